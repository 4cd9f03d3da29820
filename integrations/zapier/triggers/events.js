// Triggers as REST hooks. Turning a Zap on subscribes its URL to one Payymo event type (a
// webhook endpoint filtered to that type); turning it off deletes the endpoint. Samples come
// from the events list, which returns the very envelopes the webhook delivers.

const { apiRoot } = require('../authentication');
const samples = require('../samples');

/** Builds one trigger for `eventType`. */
const eventTrigger = ({ key, eventType, noun, label, description, sample, outputFields, keep }) => ({
  key,
  noun,
  display: { label, description },
  operation: {
    type: 'hook',

    performSubscribe: async (z, bundle) => {
      const response = await z.request({
        url: `${apiRoot(bundle)}/webhook_endpoints`,
        method: 'POST',
        body: { url: bundle.targetUrl, event_types: [eventType], description: `Zapier: ${label}` },
      });
      // Only the id is kept (as bundle.subscribeData); the endpoint's signing secret is not needed.
      return { id: response.data.id };
    },

    performUnsubscribe: async (z, bundle) => {
      const response = await z.request({
        url: `${apiRoot(bundle)}/webhook_endpoints/${bundle.subscribeData.id}`,
        method: 'DELETE',
        skipThrowForStatus: true,
      });
      // Someone deleted the endpoint in Payymo already: it is gone either way.
      if (response.status !== 404) response.throwForStatus();
      return {};
    },

    // One delivery is one event envelope.
    perform: async (z, bundle) => [bundle.cleanedRequest].filter((event) => !keep || keep(event)),

    // The latest events of this type, newest first, as the hook delivers them.
    performList: async (z, bundle) => {
      const response = await z.request({
        url: `${apiRoot(bundle)}/events`,
        params: { type: eventType, limit: 10 },
      });
      return response.data.data.filter((event) => !keep || keep(event)).slice(0, 3);
    },

    sample,
    outputFields: [
      { key: 'id', label: 'Event ID' },
      { key: 'event_type', label: 'Event type' },
      { key: 'timestamp', label: 'When it happened', type: 'datetime' },
      ...outputFields.map((f) => ({ ...f, key: `data__${f.key}` })),
    ],
  },
});

const TRANSACTION_FIELDS = [
  { key: 'id', label: 'Transaction ID' },
  { key: 'amount', label: 'Amount (minor units, e.g. cents)', type: 'integer' },
  { key: 'currency', label: 'Currency' },
  { key: 'direction', label: 'Direction (credit or debit)' },
  { key: 'booking_date', label: 'Booking date', type: 'datetime' },
  { key: 'counterparty_name', label: 'Counterparty' },
  { key: 'description', label: 'Remittance text' },
  { key: 'reference', label: 'Reference' },
  { key: 'match_status', label: 'Match status' },
  { key: 'category', label: 'Category' },
];

const INVOICE_FIELDS = [
  { key: 'id', label: 'Invoice ID' },
  { key: 'number', label: 'Invoice number' },
  { key: 'external_id', label: 'External ID' },
  { key: 'customer_id', label: 'Customer ID' },
  { key: 'currency', label: 'Currency' },
  { key: 'amount_total', label: 'Total (minor units)', type: 'integer' },
  { key: 'amount_paid', label: 'Paid (minor units)', type: 'integer' },
  { key: 'amount_due', label: 'Due (minor units)', type: 'integer' },
  { key: 'status', label: 'Status' },
  { key: 'due_date', label: 'Due date', type: 'datetime' },
];

const triggers = [
  eventTrigger({
    key: 'new_transaction',
    eventType: 'transaction.created',
    noun: 'Transaction',
    label: 'New Transaction',
    description: 'Triggers when a bank transaction arrives (synced or imported).',
    sample: samples.event('transaction.created', samples.transaction),
    outputFields: TRANSACTION_FIELDS,
  }),
  eventTrigger({
    key: 'new_unmatched_credit',
    eventType: 'transaction.needs_review',
    noun: 'Credit',
    label: 'New Unmatched Credit',
    description:
      'Triggers once for each bank credit that reconciliation could not match by itself: it waits for a person, with or without suggestions.',
    sample: samples.event('transaction.needs_review', { ...samples.transaction, match_status: 'suggested' }),
    outputFields: TRANSACTION_FIELDS,
  }),
  eventTrigger({
    key: 'transaction_matched',
    eventType: 'transaction.matched',
    noun: 'Match',
    label: 'Transaction Matched',
    description: 'Triggers when bank transactions are matched to invoices or Stripe payouts, automatically or by a person.',
    sample: samples.event('transaction.matched', samples.match),
    outputFields: [
      { key: 'id', label: 'Match ID' },
      { key: 'origin', label: 'Matched by (auto, suggestion, manual)' },
      { key: 'score', label: 'Score', type: 'number' },
    ],
  }),
  eventTrigger({
    key: 'invoice_paid',
    eventType: 'invoice.paid',
    noun: 'Invoice',
    label: 'Invoice Paid',
    description: 'Triggers when an invoice is paid in full by matched bank money.',
    sample: samples.event('invoice.paid', { ...samples.invoice, amount_paid: 125000, amount_due: 0, status: 'paid' }),
    outputFields: INVOICE_FIELDS,
  }),
  eventTrigger({
    key: 'invoice_partially_paid',
    eventType: 'invoice.partially_paid',
    noun: 'Invoice',
    label: 'Invoice Partially Paid',
    description: 'Triggers when a payment covers part of an invoice.',
    sample: samples.event('invoice.partially_paid', { ...samples.invoice, amount_paid: 50000, amount_due: 75000, status: 'partially_paid' }),
    outputFields: INVOICE_FIELDS,
  }),
  eventTrigger({
    key: 'stripe_payout_paid',
    eventType: 'stripe_payout.paid',
    noun: 'Payout',
    label: 'Stripe Payout Paid',
    description: 'Triggers when Stripe pays a payout out to the bank.',
    sample: samples.event('stripe_payout.paid', samples.payout),
    outputFields: [
      { key: 'id', label: 'Payout ID' },
      { key: 'amount', label: 'Amount (minor units)', type: 'integer' },
      { key: 'currency', label: 'Currency' },
      { key: 'arrival_date', label: 'Arrival date', type: 'datetime' },
      { key: 'statement_descriptor', label: 'Statement descriptor' },
      { key: 'trace_id', label: 'Trace ID' },
    ],
  }),
  eventTrigger({
    key: 'bank_connection_expiring',
    eventType: 'bank_connection.expiring',
    noun: 'Bank Connection',
    label: 'Bank Connection Expiring',
    description: "Triggers when a bank connection's consent is about to expire and must be renewed.",
    sample: samples.event('bank_connection.expiring', samples.connection),
    outputFields: [
      { key: 'id', label: 'Connection ID' },
      { key: 'institution_name', label: 'Bank' },
      { key: 'expires_at', label: 'Consent expires', type: 'datetime' },
      { key: 'expiring_in_days', label: 'Days left', type: 'integer' },
    ],
  }),
  eventTrigger({
    key: 'webhook_endpoint_disabled',
    eventType: 'webhook_endpoint.disabled',
    noun: 'Webhook Endpoint',
    label: 'Webhook Endpoint Disabled',
    description: 'Triggers when Payymo disables a webhook endpoint that kept failing.',
    sample: samples.event('webhook_endpoint.disabled', samples.endpoint),
    outputFields: [
      { key: 'id', label: 'Endpoint ID' },
      { key: 'url', label: 'URL' },
      { key: 'disabled_reason', label: 'Why' },
    ],
  }),
];

module.exports = { eventTrigger, triggers };
