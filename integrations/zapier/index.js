// Payymo for Zapier: bank reconciliation events as triggers; invoices, customers, matches and
// exclusions as actions; invoices and transactions as searches.

const authentication = require('./authentication');
const { addApiKey, explainRefusals } = require('./middleware');
const { triggers } = require('./triggers/events');
const invoice = require('./creates/invoice');
const customer = require('./creates/customer');
const match = require('./creates/match');
const excludeTransaction = require('./creates/exclude');
const transaction = require('./creates/transaction');
const findInvoice = require('./searches/invoice');
const findTransaction = require('./searches/transaction');

const byKey = (items) => Object.fromEntries(items.map((item) => [item.key, item]));

module.exports = {
  version: require('./package.json').version,
  platformVersion: require('zapier-platform-core').version,
  authentication: {
    type: authentication.type,
    fields: authentication.fields,
    test: authentication.test,
    connectionLabel: authentication.connectionLabel,
  },
  beforeRequest: [addApiKey],
  afterResponse: [explainRefusals],
  triggers: byKey(triggers),
  creates: byKey([invoice, customer, transaction, match, excludeTransaction]),
  searches: byKey([findInvoice, findTransaction]),
  searchOrCreates: {
    find_invoice: {
      key: 'find_invoice',
      display: { label: 'Find or Create Invoice', description: 'Finds an invoice, or creates it when there is none.' },
      search: 'find_invoice',
      create: 'invoice',
    },
    find_transaction: {
      key: 'find_transaction',
      display: { label: 'Find or Create Transaction', description: 'Finds a transaction, or records it in a manual account.' },
      search: 'find_transaction',
      create: 'transaction',
    },
  },
};
