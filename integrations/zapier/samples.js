// Samples for the Zap editor: the examples of Payymo's own OpenAPI document
// (openapi/openapi.json, components.schemas.<Name>.example), copied here because an app
// is pushed to Zapier on its own. test/samples.test.js fails when they drift apart.

/** `Transaction` */
const transaction = {
  "id": "txn_0192f3c4d5e6478fa1b2c3d4e5f60718",
  "account_id": "ba_0192f3c4d5e6478fa1b2c3d4e5f60718",
  "bank_connection_id": "bc_0192f3c4d5e6478fa1b2c3d4e5f60718",
  "status": "booked",
  "amount": 125000,
  "currency": "GBP",
  "booking_date": "2026-11-20",
  "value_date": "2026-11-20",
  "description": "Payment INV-2026-0042",
  "counterparty_name": "Acme Widgets Ltd",
  "reference": "NOTPROVIDED",
  "bank_transaction_code": "PMNT-RCDT-ESCT",
  "direction": "credit",
  "match_status": "unmatched",
  "category": "sales",
  "category_source": "rule",
  "notes": null,
  "tags": [
    "q4"
  ],
  "metadata": {
    "invoice_id": "INV-2026-0042"
  },
  "source": "bank_feed",
  "external_id": null,
  "created_at": "2026-11-21T09:31:02Z",
  "updated_at": "2026-11-21T09:31:02Z"
};

/** `Invoice` */
const invoice = {
  "id": "inv_0192f3c4d5e6478fa1b2c3d4e5f60718",
  "number": "INV-2026-0104",
  "source": "hubspot",
  "external_id": "hs-inv-88172",
  "customer_id": "cus_0192f3c4d5e6478fa1b2c3d4e5f60718",
  "currency": "GBP",
  "amount_total": 125000,
  "amount_tax": 20833,
  "amount_paid": 0,
  "amount_due": 125000,
  "issue_date": "2026-11-20",
  "due_date": "2026-12-20",
  "status": "open",
  "payment_reference": "INV-2026-0104",
  "rf_reference": "RF18539007547034",
  "lines": [
    {
      "description": "Widgets",
      "quantity": 10,
      "unit_amount": 10417,
      "amount": 104170
    }
  ],
  "metadata": {},
  "voided_at": null,
  "created_at": "2026-12-03T09:30:00.000000Z",
  "updated_at": "2026-12-03T09:30:00.000000Z"
};

/** `Customer` */
const customer = {
  "id": "cus_0192f3c4d5e6478fa1b2c3d4e5f60718",
  "name": "Acme Widgets Ltd",
  "email": "accounts@acme.example",
  "source": "hubspot",
  "external_id": "hs-4411",
  "aliases": [
    "ACME WIDGETS LTD",
    "ACME W"
  ],
  "bank_accounts": [
    {
      "iban": "GB82WEST12345698765432",
      "account_number": null,
      "sort_code": null,
      "routing_number": null
    }
  ],
  "metadata": {
    "segment": "wholesale"
  },
  "created_at": "2026-12-03T09:30:00.000000Z",
  "updated_at": "2026-12-03T09:30:00.000000Z"
};

/** `Match` */
const match = {
  "id": "match_0192f3c4d5e6478fa1b2c3d4e5f60718",
  "status": "active",
  "origin": "auto",
  "created_by": "engine",
  "suggestion_id": null,
  "score": 0.97,
  "reasons": [
    {
      "signal": "reference",
      "strength": 1.0,
      "weight": 0.45,
      "detail": "reference INV-2026-0104 found in the remittance text"
    },
    {
      "signal": "amount",
      "strength": 1.0,
      "weight": 0.3,
      "detail": "amount equal (1,250.00 GBP)"
    }
  ],
  "note": null,
  "metadata": {},
  "transactions": [
    {
      "transaction_id": "txn_0192f3c4d5e6478fa1b2c3d4e5f60718",
      "amount": 125000,
      "currency": "GBP"
    }
  ],
  "allocations": [
    {
      "target_type": "invoice",
      "target_id": "inv_0192f3c4d5e6478fa1b2c3d4e5f60718",
      "amount": 125000,
      "currency": "GBP",
      "via_payout_id": null,
      "via_payment_id": null
    }
  ],
  "adjustments": [],
  "unmatched_at": null,
  "unmatched_by": null,
  "unmatch_reason": null,
  "created_at": "2026-12-04T09:30:00.000000Z",
  "updated_at": "2026-12-04T09:30:00.000000Z"
};

/** `StripePayout` */
const payout = {
  "id": "po_1PgafuB7WZ01zgkWq2x4HmVb",
  "connection_id": "sc_0192f3c4d5e6478fa1b2c3d4e5f60718",
  "status": "paid",
  "amount": 9536,
  "currency": "EUR",
  "arrival_date": "2026-12-06",
  "automatic": true,
  "method": "standard",
  "statement_descriptor": "PAYYMO SANDBOX",
  "trace_id": "4821907735120046",
  "failure_code": null,
  "failure_message": null,
  "balance_transaction_id": "txn_1PgafuB7WZ01zgkWs0aPb3Ld",
  "summary": {
    "gross": 10000,
    "refunds": 0,
    "adjustments": 0,
    "fees": 464,
    "net": 9536,
    "transaction_count": 5,
    "adds_up": true,
    "difference": 0
  },
  "created": "2026-12-04T00:00:00Z",
  "updated_at": "2026-12-06T00:00:01.120374Z"
};

/** `BankConnection` */
const connection = {
  "id": "bc_0192f3c4d5e6478fa1b2c3d4e5f60718",
  "institution_id": "SANDBOXFINANCE_SFIN0000",
  "institution_name": "Sandbox Finance",
  "status": "linked",
  "consent_link": "https://ob.gocardless.com/psd2/start/\u2026",
  "redirect_url": "https://portal.example.com/banks/done",
  "max_historical_days": 90,
  "access_valid_for_days": 90,
  "linked_at": "2026-11-21T09:30:00Z",
  "expires_at": "2027-02-19T09:30:00Z",
  "expiring_in_days": null,
  "last_synced_at": "2026-11-21T09:31:02Z",
  "error": null,
  "accounts": [],
  "sync_budget": {
    "day_limit": 4,
    "transactions_remaining": 3,
    "balances_remaining": 3,
    "details_remaining": 3,
    "resets_at": "2026-11-22T00:00:00Z"
  },
  "created_at": "2026-11-21T09:29:40Z",
  "updated_at": "2026-11-21T09:31:02Z"
};

/** `WebhookEndpoint` */
const endpoint = {
  "id": "we_0192f3c4d5e6478fa1b2c3d4e5f60718",
  "url": "https://erp.example.com/hooks/payymo",
  "description": "ERP sync",
  "event_types": [
    "transaction.created",
    "transaction.updated"
  ],
  "metadata": {
    "team": "finance"
  },
  "enabled": true,
  "disabled_reason": null,
  "disabled_at": null,
  "failing_since": null,
  "paused_until": null,
  "previous_secret_expires_at": null,
  "created_at": "2026-11-21T09:30:00Z",
  "updated_at": "2026-11-21T09:30:00Z"
};

/** The envelope a webhook delivers (and GET /events lists) around `data`. */
const event = (eventType, data) => ({
  id: 'evt_0192f3c4d5e6478fa1b2c3d4e5f60718',
  event_type: eventType,
  timestamp: '2026-12-03T09:30:00.000000Z',
  tenant_id: 'ten_0192f3c4d5e6478fa1b2c3d4e5f60718',
  data,
});

/** Which schema each sample is the example of. */
const SCHEMAS = {"transaction": "Transaction", "invoice": "Invoice", "customer": "Customer", "match": "Match", "payout": "StripePayout", "connection": "BankConnection", "endpoint": "WebhookEndpoint"};

module.exports = { transaction, invoice, customer, match, payout, connection, endpoint, event, SCHEMAS };
