// A real Payymo server for the tests: `payymo serve` on its own embedded PostgreSQL cluster in a
// temporary folder, with its workers (webhook dispatcher, job queue) running. Also a local
// receiver that stands in for Zapier's hook URLs.

const { spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');

const ADMIN_TOKEN = crypto.randomBytes(24).toString('hex');

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

const binary = () => {
  const found = process.env.PAYYMO_BIN || path.resolve(__dirname, '../../../target/debug/payymo');
  if (!fs.existsSync(found)) {
    throw new Error(`no payymo binary at ${found}: run \`cargo build\` first, or set PAYYMO_BIN`);
  }
  return found;
};

/** Starts the server; resolves to { url, stop, admin(method, path, body), request(...) }. */
async function start() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'payymo-zapier-'));
  fs.chmodSync(work, 0o755); // the database user must reach the embedded cluster under root
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = { ...process.env };
  delete env.DATABASE_URL;
  Object.assign(env, {
    PAYYMO_DATA_DIR: path.join(work, 'data'),
    PAYYMO_LISTEN: `127.0.0.1:${port}`,
    PAYYMO_ADMIN_TOKEN: ADMIN_TOKEN,
    PAYYMO_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.0/8',
    PAYYMO_WEBHOOK_RETRY_SCHEDULE: '1s,1s',
    PAYYMO_WEBHOOK_DISABLE_AFTER: '1s',
    PAYYMO_LOG: 'warn',
  });
  const log = fs.openSync(path.join(work, 'server.log'), 'w');
  const child = spawn(binary(), ['serve'], { env, stdio: ['ignore', log, log] });
  let exited = null;
  child.on('exit', (code) => (exited = code));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (exited !== null) {
      throw new Error(`payymo exited (${exited}):\n${fs.readFileSync(path.join(work, 'server.log'), 'utf8')}`);
    }
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) break;
    } catch (e) {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error('payymo did not answer /healthz within 120 s');
    await new Promise((r) => setTimeout(r, 250));
  }

  const request = async (method, route, { token, body } = {}) => {
    const response = await fetch(`${url}${route}`, {
      method,
      headers: {
        Authorization: `Bearer ${token}`,
        'Content-Type': 'application/json',
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };

  const stop = async () => {
    if (exited === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.on('exit', resolve));
    }
    fs.rmSync(work, { recursive: true, force: true });
  };

  return { url, request, stop, admin: (method, route, body) => request(method, route, { token: ADMIN_TOKEN, body }) };
}

/** A hook URL: records every delivery; `next(predicate)` waits for one. */
async function receiver() {
  const received = [];
  const waiting = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const delivery = { headers: req.headers, body: JSON.parse(body || 'null') };
      received.push(delivery);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"status":"success"}');
      for (const w of [...waiting]) if (w.check(delivery)) w.resolve(delivery);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/hooks/catch/123/abc/`;
  const next = (check, ms = 20_000) => {
    const found = received.find(check);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const entry = { check, resolve };
      waiting.push(entry);
      setTimeout(() => reject(new Error(`no matching delivery within ${ms} ms (${received.length} received)`)), ms);
    });
  };
  return { url, received, next, close: () => new Promise((r) => server.close(r)) };
}

module.exports = { start, receiver };
