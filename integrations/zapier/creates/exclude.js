// Exclude a Transaction: takes it out of reconciliation (an internal transfer, a refund from a
// supplier), with the reason kept on it.

const { apiRoot } = require('../authentication');
const samples = require('../samples');

const perform = async (z, bundle) => {
  const response = await z.request({
    url: `${apiRoot(bundle)}/transactions/${encodeURIComponent(bundle.inputData.transaction_id)}/exclude`,
    method: 'POST',
    body: { reason: bundle.inputData.reason || null },
  });
  return response.data;
};

module.exports = {
  key: 'exclude_transaction',
  noun: 'Transaction',
  display: {
    label: 'Exclude a Transaction',
    description: 'Takes a bank transaction out of reconciliation, with the reason.',
  },
  operation: {
    perform,
    inputFields: [
      { key: 'transaction_id', label: 'Transaction ID', required: true },
      { key: 'reason', label: 'Reason', required: false, helpText: 'e.g. Transfer between our own accounts' },
    ],
    sample: { transaction_id: samples.transaction.id, match_status: 'excluded', changed: true },
    outputFields: [
      { key: 'transaction_id', label: 'Transaction ID' },
      { key: 'match_status', label: 'Match status' },
      { key: 'changed', label: 'Changed (false when it was excluded already)', type: 'boolean' },
    ],
  },
};
