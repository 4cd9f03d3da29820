// The Zapier app against a real Payymo: every trigger's subscribe → event → perform →
// unsubscribe cycle, every action and search on real data, and authentication, with Zapier's
// own app tester.

const assert = require('assert');
const zapier = require('zapier-platform-core');
const App = require('../index');
const { start, receiver } = require('./server');

const appTester = zapier.createAppTester(App);
zapier.tools.env.inject();

const SCOPES = ['webhooks:write', 'invoices:write', 'transactions:write', 'reconciliation:write'];

describe('Payymo for Zapier', function () {
  this.timeout(60_000);
  let server;
  let hook;
  let owner; // a key with every scope, for causing events as another system would
  let auth; // the key a Zapier user pastes: the scopes the connection's help text names
  let account;

  const as = (token) => (method, route, body) => server.request(method, `/api/v1${route}`, { token, body });
  const ok = async (promise, status = [200, 201]) => {
    const response = await promise;
    assert.ok([].concat(status).includes(response.status), JSON.stringify(response));
    return response.body;
  };
  const key = async (tenant, scopes) =>
    (await ok(server.admin('POST', `/admin/v1/tenants/${tenant}/api_keys`, { label: 'zapier', scopes }))).secret;
  let serial = 0;
  const credit = async (amount, description, counterparty = 'ACME WIDGETS LTD') => {
    serial += 1;
    const report = await ok(
      as(owner)('POST', '/transactions/import', {
        account_id: account,
        rows: [{ amount, description, counterparty_name: counterparty, booking_date: '2026-12-01', external_id: `row-${serial}-${Date.now()}` }],
      }),
    );
    return report.results[0].transaction_id;
  };
  const invoice = async (number, amountTotal) =>
    (await ok(as(owner)('POST', '/invoices', { number, currency: 'EUR', amount_total: amountTotal }))).id;

  before(async function () {
    this.timeout(180_000);
    server = await start();
    hook = await receiver();
    const tenant = await ok(server.admin('POST', '/admin/v1/tenants', { name: 'Zapier Test Ltd', environment: 'test', plan: 'premium' }));
    owner = await key(tenant.id, ['*']);
    auth = { api_key: await key(tenant.id, SCOPES), base_url: server.url };
    account = (await ok(as(owner)('POST', '/accounts', { name: 'Current EUR', currency: 'EUR' }))).id;
  });

  after(async () => {
    if (hook) await hook.close();
    if (server) await server.stop();
  });

  describe('authentication', () => {
    it('tests a key on /me and labels the connection with the tenant and its mode', async () => {
      const me = await appTester(App.authentication.test, { authData: auth });
      assert.strictEqual(me.tenant_name, 'Zapier Test Ltd');
      const label = await appTester(App.authentication.connectionLabel, { authData: auth, inputData: me });
      assert.strictEqual(label, 'Zapier Test Ltd (test)');
    });

    it("refuses a revoked key with Payymo's own words", async () => {
      const made = await ok(as(owner)('POST', '/api_keys', { label: 'soon revoked', scopes: ['webhooks:read'] }));
      await ok(as(owner)('POST', `/api_keys/${made.id}/revoke`));
      await assert.rejects(
        appTester(App.authentication.test, { authData: { api_key: made.secret, base_url: server.url } }),
        (error) => error.message.includes('the credential has been revoked'),
      );
    });
  });

  /**
   * Turns the trigger on (an endpoint filtered to its event type exists), causes the event,
   * runs `perform` on what was delivered, compares with `performList`, then turns it off.
   */
  const cycle = async (triggerKey, eventType, cause, isIt) => {
    const op = App.triggers[triggerKey].operation;
    const subscription = await appTester(op.performSubscribe, { authData: auth, targetUrl: hook.url });
    const endpoint = await ok(as(owner)('GET', `/webhook_endpoints/${subscription.id}`));
    assert.deepStrictEqual(endpoint.event_types, [eventType]);
    assert.strictEqual(endpoint.url, hook.url);

    const caused = await cause();
    const delivery = await hook.next((d) => d.body.event_type === eventType && isIt(d.body.data, caused));
    const performed = await appTester(op.perform, { authData: auth, cleanedRequest: delivery.body });
    assert.strictEqual(performed.length, 1);
    assert.deepStrictEqual(performed[0], delivery.body);

    const listed = await appTester(op.performList, { authData: auth });
    const same = listed.find((event) => event.id === delivery.body.id);
    assert.ok(same, `${eventType}: the delivered event is among the samples`);
    assert.deepStrictEqual(Object.keys(same).sort(), Object.keys(delivery.body).sort());
    assert.deepStrictEqual(Object.keys(same.data).sort(), Object.keys(delivery.body.data).sort());
    // The trigger's sample looks like the real thing.
    for (const field of Object.keys(op.sample)) assert.ok(field in delivery.body, `${triggerKey}: sample field ${field}`);

    await appTester(op.performUnsubscribe, { authData: auth, subscribeData: subscription });
    const gone = await as(owner)('GET', `/webhook_endpoints/${subscription.id}`);
    assert.strictEqual(gone.status, 404);
    // Unsubscribing twice (Zapier retries) is not an error.
    await appTester(op.performUnsubscribe, { authData: auth, subscribeData: subscription });
  };

  describe('triggers', () => {
    it('New Transaction', () =>
      cycle('new_transaction', 'transaction.created', () => credit('12.00', 'SOMETHING'), (data, id) => data.id === id));

    it('New Unmatched Credit', () =>
      cycle('new_unmatched_credit', 'transaction.needs_review', () => credit('77.70', 'NO IDEA'), (data, id) => data.id === id || data.transaction_id === id));

    it('Transaction Matched and Invoice Paid', async () => {
      let paid;
      const match = async () => {
        paid = await invoice(`Z-PAID-${Date.now()}`, 4200);
        const txn = await credit('42.00', 'TRANSFER', 'SOMEONE');
        return (await ok(as(owner)('POST', '/reconciliation/matches', { transaction_ids: [txn], allocations: [{ target_type: 'invoice', target_id: paid }] }))).id;
      };
      await cycle('transaction_matched', 'transaction.matched', match, (data, id) => data.id === id);
      await cycle('invoice_paid', 'invoice.paid', match, (data) => data.id === paid);
    });

    it('Invoice Partially Paid', async () => {
      let target;
      await cycle(
        'invoice_partially_paid',
        'invoice.partially_paid',
        async () => {
          target = await invoice(`Z-PART-${Date.now()}`, 10000);
          const txn = await credit('40.00', 'PART', 'SOMEONE');
          await ok(as(owner)('POST', '/reconciliation/matches', { transaction_ids: [txn], allocations: [{ target_type: 'invoice', target_id: target, amount: 4000 }] }));
        },
        (data) => data.id === target,
      );
    });

    it('Webhook Endpoint Disabled', async () => {
      let failing;
      await cycle(
        'webhook_endpoint_disabled',
        'webhook_endpoint.disabled',
        async () => {
          // Nothing listens on port 9: every attempt fails until the endpoint is disabled.
          failing = (await ok(as(owner)('POST', '/webhook_endpoints', { url: 'http://127.0.0.1:9/down', event_types: ['invoice.created'] }))).id;
          await invoice(`Z-FAIL-${Date.now()}`, 100);
        },
        (data) => data.id === failing,
      );
    });

    // No API call makes Stripe pay out or a consent near its end, so for these two the cycle
    // runs on the subscription and the samples, and `perform` on the trigger's sample.
    for (const [triggerKey, eventType] of [['stripe_payout_paid', 'stripe_payout.paid'], ['bank_connection_expiring', 'bank_connection.expiring']]) {
      it(`${App.triggers[triggerKey].display.label} (subscription and samples)`, async () => {
        const op = App.triggers[triggerKey].operation;
        const subscription = await appTester(op.performSubscribe, { authData: auth, targetUrl: hook.url });
        const endpoint = await ok(as(owner)('GET', `/webhook_endpoints/${subscription.id}`));
        assert.deepStrictEqual(endpoint.event_types, [eventType]);
        assert.deepStrictEqual(await appTester(op.performList, { authData: auth }), []);
        assert.deepStrictEqual(await appTester(op.perform, { authData: auth, cleanedRequest: op.sample }), [op.sample]);
        await appTester(op.performUnsubscribe, { authData: auth, subscribeData: subscription });
        assert.strictEqual((await as(owner)('GET', `/webhook_endpoints/${subscription.id}`)).status, 404);
      });
    }
  });

  describe('actions and searches', () => {
    it('Find or Create Transaction: nothing found, then recorded once however often it is sent', async () => {
      const find = (inputData) => appTester(App.searches.find_transaction.operation.perform, { authData: auth, inputData });
      const create = (inputData) => appTester(App.creates.transaction.operation.perform, { authData: auth, inputData });
      assert.deepStrictEqual(await find({ reference: 'CASH-SALE-88' }), []);
      const inputData = { account_id: account, external_id: 'pos-88', amount: '31.50', booking_date: '2026-12-02', description: 'Cash sale', reference: 'CASH-SALE-88' };
      const made = await create(inputData);
      assert.deepStrictEqual([made.outcome, made.amount, made.currency], ['created', 3150, 'EUR']);
      const again = await create(inputData);
      assert.deepStrictEqual([again.outcome, again.id], ['unchanged', made.id]);
      assert.deepStrictEqual((await find({ reference: 'CASH-SALE-88' })).map((t) => t.id), [made.id]);
      await assert.rejects(create({ ...inputData, external_id: 'pos-89', amount: '31.505' }), (error) => /amount/.test(error.message));
    });

    it('Create or Update Invoice upserts by external ID, and Find Invoice finds it both ways', async () => {
      const inputData = { external_id: 'crm-1001', number: 'Z-1001', currency: 'EUR', amount_total: 12500, due_date: '2026-12-31' };
      const created = await appTester(App.creates.invoice.operation.perform, { authData: auth, inputData });
      assert.strictEqual(created.outcome, 'created');
      assert.strictEqual(created.amount_due, 12500);
      const updated = await appTester(App.creates.invoice.operation.perform, { authData: auth, inputData: { ...inputData, amount_total: 13000 } });
      assert.strictEqual(updated.outcome, 'updated');
      assert.strictEqual(updated.id, created.id);
      assert.strictEqual(updated.amount_total, 13000);

      const byNumber = await appTester(App.searches.find_invoice.operation.perform, { authData: auth, inputData: { number: 'Z-1001' } });
      const byExternal = await appTester(App.searches.find_invoice.operation.perform, { authData: auth, inputData: { external_id: 'crm-1001' } });
      assert.deepStrictEqual([byNumber[0].id, byExternal[0].id], [created.id, created.id]);
      const none = await appTester(App.searches.find_invoice.operation.perform, { authData: auth, inputData: { number: 'NOPE-1' } });
      assert.deepStrictEqual(none, []);
    });

    it('a bad invoice is refused with the field named', async () => {
      await assert.rejects(
        appTester(App.creates.invoice.operation.perform, { authData: auth, inputData: { external_id: 'crm-bad', number: 'Z-BAD', currency: 'EURO', amount_total: 100 } }),
        (error) => /currency/.test(error.message),
      );
    });

    it('Create or Update Customer upserts by external ID', async () => {
      const inputData = { external_id: 'crm-c-1', name: 'Acme Widgets Ltd', aliases: ['ACME W'], iban: 'GB82WEST12345698765432' };
      const created = await appTester(App.creates.customer.operation.perform, { authData: auth, inputData });
      assert.strictEqual(created.outcome, 'created');
      assert.deepStrictEqual(created.aliases, ['ACME W']);
      const again = await appTester(App.creates.customer.operation.perform, { authData: auth, inputData: { ...inputData, email: 'ap@acme.example' } });
      assert.deepStrictEqual([again.outcome, again.id, again.email], ['updated', created.id, 'ap@acme.example']);
    });

    it('Find Transaction by reference and by amount and date; Match it; Exclude another', async () => {
      // A short payment that quotes no invoice: a person (here, a Zap) decides what it pays.
      const target = await invoice('Z-2002', 10000);
      const txn = await credit('95.00', 'PAYMENT REF QX-7781', 'SOMEONE ELSE');
      const byReference = await appTester(App.searches.find_transaction.operation.perform, { authData: auth, inputData: { reference: 'QX-7781' } });
      assert.deepStrictEqual(byReference.map((t) => t.id), [txn]);
      const byAmount = await appTester(App.searches.find_transaction.operation.perform, { authData: auth, inputData: { amount: 9500, booking_date: '2026-12-01' } });
      assert.ok(byAmount.some((t) => t.id === txn));

      const match = await appTester(App.creates.match.operation.perform, {
        authData: auth,
        inputData: { transaction_id: txn, invoice_ids: [target], amounts: ['10000'], adjustment_kind: 'short_payment', adjustment_amount: -500 },
      });
      assert.strictEqual(match.status, 'active');
      assert.deepStrictEqual(match.adjustments.map((a) => [a.kind, a.amount]), [['short_payment', -500]]);
      const paid = await ok(as(owner)('GET', `/invoices/${target}`));
      assert.deepStrictEqual([paid.status, paid.amount_due], ['paid', 0]);

      const internal = await credit('500.00', 'OWN ACCOUNT TRANSFER', 'OURSELVES');
      const excluded = await appTester(App.creates.exclude_transaction.operation.perform, { authData: auth, inputData: { transaction_id: internal, reason: 'Transfer between our own accounts' } });
      assert.deepStrictEqual(excluded, { transaction_id: internal, match_status: 'excluded', changed: true });
      assert.deepStrictEqual(Object.keys(App.creates.exclude_transaction.operation.sample).sort(), Object.keys(excluded).sort());

      await assert.rejects(
        appTester(App.creates.match.operation.perform, { authData: auth, inputData: { transaction_id: internal, invoice_ids: [target] } }),
        (error) => error.message.length > 10 && !/^HTTP/.test(error.message),
      );
    });
  });
});
