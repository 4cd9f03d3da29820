// Find Transaction: by the reference in its remittance text, or by its amount and booking date.

const { apiRoot } = require('../authentication');
const samples = require('../samples');

const perform = async (z, bundle) => {
  const { reference, amount, booking_date: bookingDate } = bundle.inputData;
  const byAmount = amount !== undefined && amount !== null && amount !== '';
  if (!reference && !byAmount) {
    throw new z.errors.Error('Give a reference, or an amount (and a booking date), to search by.', 'invalid_input', 400);
  }
  const params = { limit: 10 };
  if (reference) params.q = reference;
  if (byAmount) {
    params.amount_min = amount;
    params.amount_max = amount;
  }
  if (bookingDate) {
    params.booking_date_from = bookingDate;
    params.booking_date_to = bookingDate;
  }
  const response = await z.request({ url: `${apiRoot(bundle)}/transactions`, params });
  return response.data.data;
};

module.exports = {
  key: 'find_transaction',
  noun: 'Transaction',
  display: { label: 'Find Transaction', description: 'Finds a bank transaction by reference, or by amount and date.' },
  operation: {
    perform,
    inputFields: [
      { key: 'reference', label: 'Reference', required: false, helpText: 'Text in the remittance information, e.g. INV-2026-0104.' },
      { key: 'amount', label: 'Amount (minor units)', type: 'integer', required: false, helpText: 'Signed: money in is positive. 12500 is 125.00.' },
      { key: 'booking_date', label: 'Booking date', required: false, helpText: 'YYYY-MM-DD' },
    ],
    sample: samples.transaction,
    outputFields: [
      { key: 'id', label: 'Transaction ID' },
      { key: 'amount', label: 'Amount (minor units)', type: 'integer' },
      { key: 'currency', label: 'Currency' },
      { key: 'booking_date', label: 'Booking date' },
      { key: 'counterparty_name', label: 'Counterparty' },
      { key: 'match_status', label: 'Match status' },
    ],
  },
};
