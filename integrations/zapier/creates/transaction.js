// Create Transaction: records money in or out of a manual account (cash, a bank Payymo has no
// feed for), as one row of a transactions import. The external ID makes it idempotent: the same
// ID again updates the row instead of adding a second one.

const { apiRoot } = require('../authentication');
const samples = require('../samples');

const perform = async (z, bundle) => {
  const input = bundle.inputData;
  const row = {
    external_id: input.external_id,
    amount: String(input.amount),
    booking_date: input.booking_date,
    description: input.description || undefined,
    counterparty_name: input.counterparty_name || undefined,
    reference: input.reference || undefined,
  };
  const response = await z.request({
    url: `${apiRoot(bundle)}/transactions/import`,
    method: 'POST',
    body: { account_id: input.account_id, rows: [row] },
  });
  const [result] = response.data.results;
  if (result.status === 'rejected') {
    throw new z.errors.Error(result.error, 'row_rejected', 422);
  }
  const stored = await z.request({ url: `${apiRoot(bundle)}/transactions/${result.transaction_id}` });
  return { ...stored.data, outcome: result.status };
};

module.exports = {
  key: 'transaction',
  noun: 'Transaction',
  display: {
    label: 'Create Transaction',
    description: 'Records a transaction in a manual account (cash, or a bank with no feed).',
  },
  operation: {
    perform,
    inputFields: [
      { key: 'account_id', label: 'Manual account ID', required: true, helpText: 'A Payymo account of kind `manual` (`ba_…`).' },
      { key: 'external_id', label: 'External ID', required: true, helpText: 'Your ID for it; the same ID again updates it instead of adding another.' },
      { key: 'amount', label: 'Amount', required: true, helpText: 'A decimal, negative for money out: 125.00 or -12.50.' },
      { key: 'booking_date', label: 'Booking date', required: true, helpText: 'YYYY-MM-DD' },
      { key: 'description', label: 'Description', required: false },
      { key: 'counterparty_name', label: 'Counterparty', required: false },
      { key: 'reference', label: 'Reference', required: false },
    ],
    sample: { ...samples.transaction, source: 'import', outcome: 'created' },
    outputFields: [
      { key: 'id', label: 'Transaction ID' },
      { key: 'amount', label: 'Amount (minor units)', type: 'integer' },
      { key: 'match_status', label: 'Match status' },
      { key: 'outcome', label: 'Created, updated or unchanged' },
    ],
  },
};
