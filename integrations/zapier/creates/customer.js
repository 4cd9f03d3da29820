// Create or Update Customer: upserts one customer by its external id.

const { upsertOne } = require('../lib/upsert');
const samples = require('../samples');

const perform = async (z, bundle) => {
  const input = bundle.inputData;
  const customer = {
    external_id: input.external_id,
    name: input.name,
    email: input.email || undefined,
    aliases: input.aliases && input.aliases.length ? input.aliases : undefined,
    bank_accounts: input.iban ? [{ iban: input.iban }] : undefined,
    source: input.source || undefined,
  };
  return upsertOne(z, bundle, 'customers', customer);
};

module.exports = {
  key: 'customer',
  noun: 'Customer',
  display: {
    label: 'Create or Update Customer',
    description: 'Creates a customer, or updates the one with the same external ID.',
  },
  operation: {
    perform,
    inputFields: [
      { key: 'external_id', label: 'External ID', required: true },
      { key: 'name', label: 'Name', required: true, helpText: 'As it appears on invoices; reconciliation compares bank payer names with it.' },
      { key: 'email', label: 'Email', required: false },
      { key: 'aliases', label: 'Other names', list: true, required: false, helpText: 'Names the customer pays under, e.g. ACME W.' },
      { key: 'iban', label: 'IBAN', required: false, helpText: 'An account the customer pays from: a strong signal for matching.' },
      { key: 'source', label: 'Source', required: false },
    ],
    sample: { ...samples.customer, outcome: 'created' },
    outputFields: [
      { key: 'id', label: 'Customer ID' },
      { key: 'name', label: 'Name' },
      { key: 'outcome', label: 'Created, updated or unchanged' },
    ],
  },
};
