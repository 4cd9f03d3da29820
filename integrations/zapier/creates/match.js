// Match a Transaction to Invoices: what a person does by hand in the portal. The match must
// balance to the cent; a difference is booked as an adjustment (a fee, a short payment).

const { apiRoot } = require('../authentication');
const samples = require('../samples');

const perform = async (z, bundle) => {
  const input = bundle.inputData;
  const ids = input.invoice_ids || [];
  const amounts = input.amounts || [];
  const body = {
    transaction_ids: [input.transaction_id],
    allocations: ids.map((id, i) => ({
      target_type: 'invoice',
      target_id: id,
      amount: amounts[i] !== undefined && amounts[i] !== '' ? Number(amounts[i]) : undefined,
    })),
    note: input.note || undefined,
  };
  if (input.adjustment_kind && input.adjustment_amount) {
    body.adjustments = [{ kind: input.adjustment_kind, amount: Number(input.adjustment_amount) }];
  }
  const response = await z.request({ url: `${apiRoot(bundle)}/reconciliation/matches`, method: 'POST', body });
  return response.data;
};

module.exports = {
  key: 'match',
  noun: 'Match',
  display: {
    label: 'Match a Transaction to Invoices',
    description: 'Matches a bank credit to the invoices it pays, with an adjustment for any difference.',
  },
  operation: {
    perform,
    inputFields: [
      { key: 'transaction_id', label: 'Transaction ID', required: true },
      { key: 'invoice_ids', label: 'Invoice IDs', list: true, required: true },
      { key: 'amounts', label: 'Amounts (minor units)', list: true, required: false, helpText: 'One per invoice, in the same order. Default: what each invoice still owes.' },
      {
        key: 'adjustment_kind',
        label: 'Adjustment',
        required: false,
        choices: { bank_charge: 'Bank charge', short_payment: 'Short payment written off', overpayment: 'Overpayment', fx_difference: 'FX difference', other: 'Other' },
      },
      { key: 'adjustment_amount', label: 'Adjustment amount (minor units)', type: 'integer', required: false, helpText: 'Negative when less arrived than was owed: -500 is -5.00.' },
      { key: 'note', label: 'Note', required: false },
    ],
    sample: samples.match,
    outputFields: [
      { key: 'id', label: 'Match ID' },
      { key: 'status', label: 'Status' },
      { key: 'origin', label: 'Origin' },
    ],
  },
};
