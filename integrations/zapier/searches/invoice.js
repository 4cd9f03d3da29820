// Find Invoice: by its number, or by its external ID. With "Create if not found", Zapier then
// runs Create or Update Invoice.

const { apiRoot } = require('../authentication');
const samples = require('../samples');

const perform = async (z, bundle) => {
  const { number, external_id: externalId } = bundle.inputData;
  if (!number && !externalId) {
    throw new z.errors.Error('Give an invoice number or an external ID to search by.', 'invalid_input', 400);
  }
  const response = await z.request({
    url: `${apiRoot(bundle)}/invoices`,
    params: externalId ? { external_id: externalId, limit: 10 } : { number, limit: 10 },
  });
  return response.data.data;
};

module.exports = {
  key: 'find_invoice',
  noun: 'Invoice',
  display: { label: 'Find Invoice', description: 'Finds an invoice by its number or external ID.' },
  operation: {
    perform,
    inputFields: [
      { key: 'number', label: 'Invoice number', required: false },
      { key: 'external_id', label: 'External ID', required: false },
    ],
    sample: samples.invoice,
    outputFields: [
      { key: 'id', label: 'Invoice ID' },
      { key: 'number', label: 'Invoice number' },
      { key: 'status', label: 'Status' },
      { key: 'amount_due', label: 'Due (minor units)', type: 'integer' },
    ],
  },
};
