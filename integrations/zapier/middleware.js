// Every request carries the connection's key; every refusal reaches the user as Payymo's own
// words: the problem's `detail` (and each field's message), never a bare status code.

const addApiKey = (request, z, bundle) => {
  if (bundle.authData && bundle.authData.api_key) {
    request.headers = request.headers || {};
    request.headers.Authorization = `Bearer ${bundle.authData.api_key}`;
  }
  return request;
};

const explainRefusals = (response, z) => {
  if (response.status < 400 || response.skipThrowForStatus) return response;
  let problem = {};
  try {
    problem = JSON.parse(response.content);
  } catch (e) {
    problem = { detail: response.content };
  }
  const detail = problem.detail || problem.title || `HTTP ${response.status}`;
  const fields = (problem.errors || [])
    .map((e) => `${e.field}: ${e.message}`)
    .filter((text) => !detail.includes(text));
  const message = [detail, ...fields].join('; ');
  if (response.status === 401) throw new z.errors.RefreshAuthError(message);
  if (response.status === 429) {
    throw new z.errors.ThrottledError(message, Number(response.getHeader('retry-after') || 60));
  }
  throw new z.errors.Error(message, problem.code || problem.type || 'payymo_error', response.status);
};

module.exports = { addApiKey, explainRefusals };
