// Connecting a Payymo account: a tenant's API key (sk_live_… or sk_test_…), tested on GET /me,
// which needs no scope and names the tenant for the connection label.

const DEFAULT_URL = 'https://api.payymo.example';

/** The Payymo API's root for this connection, without a trailing slash. */
const apiRoot = (bundle) =>
  `${(bundle.authData.base_url || DEFAULT_URL).replace(/\/+$/, '')}/api/v1`;

module.exports = {
  type: 'custom',
  fields: [
    {
      key: 'api_key',
      label: 'API key',
      type: 'password',
      required: true,
      helpText:
        'A Payymo API key (`sk_live_…` or `sk_test_…`). Create one under Developers → API keys with the scopes `webhooks:write`, `invoices:write`, `transactions:write` and `reconciliation:write`.',
    },
    {
      key: 'base_url',
      label: 'Payymo URL',
      type: 'string',
      required: false,
      default: DEFAULT_URL,
      helpText: 'Where your Payymo API is served. Leave it as it is unless you run your own.',
    },
  ],
  // Any valid key passes: /me needs no scope. What it returns is the label's `inputData`.
  test: async (z, bundle) => (await z.request({ url: `${apiRoot(bundle)}/me` })).data,
  // "Acme Ltd (live)": the tenant the key reaches, and whether it moves real money.
  connectionLabel: (z, bundle) => `${bundle.inputData.tenant_name} (${bundle.inputData.environment})`,
  apiRoot,
  DEFAULT_URL,
};
