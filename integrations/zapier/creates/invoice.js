// Create or Update Invoice: upserts one invoice by its external id (your system's id for it),
// through the batch endpoint with a batch of one.

const { upsertOne } = require('../lib/upsert');
const samples = require('../samples');

const perform = async (z, bundle) => {
  const input = bundle.inputData;
  const invoice = {
    external_id: input.external_id,
    number: input.number,
    currency: input.currency,
    amount_total: input.amount_total,
    customer_id: input.customer_id || undefined,
    issue_date: input.issue_date || undefined,
    due_date: input.due_date || undefined,
    payment_reference: input.payment_reference || undefined,
    source: input.source || undefined,
  };
  return upsertOne(z, bundle, 'invoices', invoice);
};

module.exports = {
  key: 'invoice',
  noun: 'Invoice',
  display: {
    label: 'Create or Update Invoice',
    description: 'Creates an invoice, or updates the one with the same external ID.',
  },
  operation: {
    perform,
    inputFields: [
      { key: 'external_id', label: 'External ID', required: true, helpText: "Your system's ID for the invoice; the same ID updates it." },
      { key: 'number', label: 'Invoice number', required: true },
      { key: 'currency', label: 'Currency', required: true, helpText: 'ISO 4217, e.g. EUR.' },
      { key: 'amount_total', label: 'Total (minor units)', type: 'integer', required: true, helpText: 'In cents (or the currency\'s minor unit): 12500 is 125.00.' },
      { key: 'customer_id', label: 'Customer ID', required: false, helpText: 'A Payymo customer (`cus_…`).' },
      { key: 'issue_date', label: 'Issue date', type: 'string', required: false, helpText: 'YYYY-MM-DD' },
      { key: 'due_date', label: 'Due date', type: 'string', required: false, helpText: 'YYYY-MM-DD' },
      { key: 'payment_reference', label: 'Payment reference', required: false, helpText: 'What the customer is asked to quote when paying.' },
      { key: 'source', label: 'Source', required: false, helpText: 'Where it comes from, e.g. hubspot (default: api). The external ID is unique per source.' },
    ],
    sample: { ...samples.invoice, outcome: 'created' },
    outputFields: [
      { key: 'id', label: 'Invoice ID' },
      { key: 'number', label: 'Invoice number' },
      { key: 'status', label: 'Status' },
      { key: 'amount_due', label: 'Due (minor units)', type: 'integer' },
      { key: 'outcome', label: 'Created, updated or unchanged' },
    ],
  },
};
