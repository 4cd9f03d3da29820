#!/usr/bin/env python3
"""Conformance check: drive the Stripe simulator with the official `stripe` client (PyPI
stripe==16.1.0), unchanged apart from its base address, and check what it makes of every answer.

Usage: stripe_conformance.py BASE_URL   (e.g. http://127.0.0.1:12111)
Exits 0 when everything matched, 1 on the first mismatch, 2 on bad usage or a missing client.
"""

import http.server
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    import stripe
except ImportError:
    print("the stripe client is missing: pip install stripe==16.1.0", file=sys.stderr)
    sys.exit(2)

SECRET_KEY = "sk_test_sandbox_payymo"
RESTRICTED_KEY = "rk_test_sandbox_payymo"


class Mismatch(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Mismatch(what)
    print(f"ok   {what}")


def control(base, path, body):
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


class Receiver(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((body, self.headers.get("Stripe-Signature")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def payments(base):
    customer = stripe.Customer.create(name="Acme Widgets Ltd", email="ap@acme.example", metadata={"crm_id": "42"})
    check(customer.object == "customer" and customer.id.startswith("cus_"), "a customer is created")
    check(customer.metadata["crm_id"] == "42", "metadata[crm_id] is read from the bracketed form")
    customer = stripe.Customer.modify(customer.id, metadata={"crm_id": ""})
    check("crm_id" not in customer.metadata, "an empty metadata value unsets the key")

    params = dict(amount=2000, currency="eur", customer=customer.id, payment_method="pm_card_visa", confirm=True)
    intent = stripe.PaymentIntent.create(
        **params, idempotency_key="order-1", expand=["latest_charge.balance_transaction"]
    )
    check(intent.status == "succeeded" and intent.amount_received == 2000, "a confirmed visa payment succeeds")
    charge = intent.latest_charge
    check(charge.object == "charge" and charge.balance_transaction.object == "balance_transaction",
          "expand[] reaches the charge and its balance transaction")
    txn = charge.balance_transaction
    check((txn.amount, txn.fee, txn.net) == (2000, 88, 1912), "the fee is 2.9% + 0.30 and net is amount - fee")
    check(txn.fee_details[0].type == "stripe_fee", "fee_details name the Stripe fee")

    again = stripe.PaymentIntent.create(
        **params, idempotency_key="order-1", expand=["latest_charge.balance_transaction"]
    )
    check(again.id == intent.id, "the same Idempotency-Key replays the same payment intent")
    check(again.last_response.headers.get("Idempotent-Replayed") == "true", "a replay says Idempotent-Replayed")
    try:
        stripe.PaymentIntent.create(**dict(params, amount=2001), idempotency_key="order-1")
        raise Mismatch("a reused key with other parameters was accepted")
    except stripe.IdempotencyError as error:
        check(error.http_status == 400, "a reused key with other parameters is an IdempotencyError")

    try:
        stripe.PaymentIntent.create(amount=500, currency="eur", payment_method="pm_card_chargeDeclined", confirm=True)
        raise Mismatch("a declined card was accepted")
    except stripe.CardError as error:
        check(error.http_status == 402 and error.code == "card_declined", "a declined card raises CardError 402")
        check(error.error.decline_code == "generic_decline", "the decline code is given")
        check(error.error.payment_intent.status == "requires_payment_method", "the intent can be retried")

    manual = stripe.PaymentIntent.create(amount=1500, currency="eur", payment_method="pm_card_visa",
                                         capture_method="manual", confirm=True)
    check(manual.status == "requires_capture" and manual.amount_capturable == 1500, "a manual payment awaits capture")
    manual = stripe.PaymentIntent.capture(manual.id)
    check(manual.status == "succeeded", "capture completes it")
    unconfirmed = stripe.PaymentIntent.create(amount=100, currency="eur")
    check(unconfirmed.status == "requires_payment_method", "an intent without a payment method waits for one")
    check(stripe.PaymentIntent.cancel(unconfirmed.id).status == "canceled", "it can be canceled")

    refund = stripe.Refund.create(payment_intent=intent.id, amount=500)
    check(refund.status == "succeeded" and refund.amount == 500, "a partial refund succeeds")
    charge = stripe.Charge.retrieve(refund.charge)
    check(charge.amount_refunded == 500 and not charge.refunded, "the charge shows what was refunded")
    try:
        stripe.Refund.create(charge=charge.id, amount=5000)
        raise Mismatch("a refund larger than the charge was accepted")
    except stripe.InvalidRequestError as error:
        check(error.param == "amount", "a refund over the charge names amount")

    disputed = stripe.PaymentIntent.create(amount=3000, currency="eur", payment_method="pm_card_createDispute",
                                           confirm=True)
    disputes = stripe.Dispute.list(payment_intent=disputed.id)
    check(len(disputes.data) == 1 and disputes.data[0].status == "needs_response", "the dispute card is disputed")

    yen = stripe.PaymentIntent.create(amount=1000, currency="jpy", payment_method="pm_card_visa", confirm=True,
                                      expand=["latest_charge.balance_transaction"])
    check(yen.latest_charge.balance_transaction.fee == 36, "JPY is zero-decimal: 3.6% of 1000 is 36")

    try:
        stripe.Customer.retrieve("cus_doesnotexist")
        raise Mismatch("an unknown customer was found")
    except stripe.InvalidRequestError as error:
        check(error.http_status == 404 and error.code == "resource_missing", "an unknown id is resource_missing")
    return intent


def many_charges(count):
    before = sum(1 for _ in stripe.Charge.list(limit=100).auto_paging_iter())
    for i in range(count):
        stripe.PaymentIntent.create(amount=100 + i, currency="gbp", payment_method="pm_card_visa", confirm=True,
                                    metadata={"n": str(i)})
    charges = list(stripe.Charge.list(limit=100).auto_paging_iter())
    check(len(charges) == before + count, f"auto_paging_iter walks all {before + count} charges")
    check(len({c.id for c in charges}) == len(charges), "no charge is listed twice")
    created = [c.created for c in charges]
    check(created == sorted(created, reverse=True), "lists are newest first")
    first = stripe.Charge.list(limit=3)
    previous = stripe.Charge.list(limit=2, ending_before=first.data[2].id)
    check([c.id for c in previous.data] == [c.id for c in first.data[:2]], "ending_before pages backwards")


def payouts(base):
    control(base, "/_stripe/clock/advance", {"seconds": 3 * 86400})
    control(base, "/_stripe/clock/advance", {"seconds": 2 * 86400})
    listed = list(stripe.Payout.list(limit=100).auto_paging_iter())
    check(len(listed) >= 2, f"automatic payouts ran per currency ({len(listed)})")
    for payout in listed:
        check(payout.status == "paid" and payout.trace_id.value, f"payout {payout.currency} is paid with a trace id")
        txns = list(stripe.BalanceTransaction.list(payout=payout.id, limit=100).auto_paging_iter())
        settled = sum(t.net for t in txns if t.type != "payout")
        own = [t for t in txns if t.type == "payout"]
        check(settled == payout.amount, f"its balance transactions sum to the payout ({settled} = {payout.amount})")
        check(len(own) == 1 and own[0].amount == -payout.amount, "the payout's own transaction is listed")
    balance = stripe.Balance.retrieve()
    check(all(f.amount == 0 for f in balance.available), "everything available was paid out")


def webhooks(endpoint, intent):
    deadline = time.time() + 20
    while time.time() < deadline and not any(b'"payout.paid"' in body for body, _ in Receiver.received):
        time.sleep(0.1)
    check(len(Receiver.received) > 0, f"the simulator delivered {len(Receiver.received)} events")
    types = set()
    for body, header in Receiver.received:
        event = stripe.Webhook.construct_event(body, header, endpoint.secret)
        types.add(event.type)
    check({"payment_intent.succeeded", "charge.refunded", "payout.paid"} <= types,
          "construct_event accepts every delivery, of every kind")
    body, header = Receiver.received[0]
    try:
        stripe.Webhook.construct_event(body.replace(b'"livemode":false', b'"livemode":true'), header, endpoint.secret)
        raise Mismatch("a tampered delivery was accepted")
    except stripe.SignatureVerificationError:
        check(True, "a tampered delivery fails verification")
    events = list(stripe.Event.list(type="payment_intent.succeeded", limit=100).auto_paging_iter())
    check(any(e.data.object.id == intent.id for e in events), "events list the payment")
    check(events[0].request.id.startswith("req_"), "events carry the request")
    check(all(e.type.startswith("charge.") for e in stripe.Event.list(type="charge.*").data), "type=charge.* filters")


def restricted(base):
    stripe.api_key = RESTRICTED_KEY
    check(stripe.Account.retrieve().object == "account", "a restricted key reads")
    try:
        stripe.Customer.create(name="x")
        raise Mismatch("a restricted key wrote")
    except stripe.PermissionError as error:
        check(error.http_status == 403, "a restricted key cannot write")
    stripe.api_key = SECRET_KEY
    try:
        stripe.api_key = "sk_test_nobody"
        stripe.Balance.retrieve()
        raise Mismatch("an unknown key was accepted")
    except stripe.AuthenticationError as error:
        check(error.http_status == 401, "an unknown key is an AuthenticationError")
    finally:
        stripe.api_key = SECRET_KEY
    control(base, "/_stripe/faults", {"status": 500, "count": 1, "path": "/v1/customers"})
    created = stripe.Customer.create(name="After a fault")
    check(created.name == "After a fault", "the client retries an injected 500 and creates once")
    names = [c.name for c in stripe.Customer.list(limit=100).data]
    check(names.count("After a fault") == 1, "exactly one customer was created")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def oauth(base):
    url = stripe.OAuth.authorize_url(scope="read_write", redirect_uri="http://127.0.0.1:9/back", state="s1")
    check(url.startswith(base + "/oauth/authorize?"), "OAuth.authorize_url points at the simulator")
    back = urllib.parse.parse_qs(urllib.parse.urlparse(redirected(url)).query)
    check(back["state"] == ["s1"] and back["code"][0].startswith("ac_"), "authorize redirects with a code")
    token = stripe.OAuth.token(grant_type="authorization_code", code=back["code"][0])
    check(token.token_type == "bearer" and token.scope == "read_write", "OAuth.token exchanges the code")
    account = stripe.Account.retrieve(api_key=token.access_token)
    check(account.id == token.stripe_user_id, "the access token works as the connected account's key")
    try:
        stripe.OAuth.token(grant_type="authorization_code", code=back["code"][0])
        raise Mismatch("a code was exchanged twice")
    except stripe.oauth_error.InvalidGrantError as error:
        check("already been used" in str(error.user_message or error), "a reused code is an InvalidGrantError")
    try:
        stripe.Account.retrieve(api_key=token.access_token)
        raise Mismatch("a token of a reused code still works")
    except stripe.AuthenticationError:
        check(True, "a reused code's token is revoked")
    again = urllib.parse.parse_qs(urllib.parse.urlparse(redirected(url)).query)
    token = stripe.OAuth.token(grant_type="authorization_code", code=again["code"][0])
    gone = stripe.OAuth.deauthorize(stripe_user_id=token.stripe_user_id)
    check(gone.stripe_user_id == token.stripe_user_id, "OAuth.deauthorize answers the account")
    try:
        stripe.Account.retrieve(api_key=token.access_token)
        raise Mismatch("a deauthorized token still works")
    except stripe.AuthenticationError:
        check(True, "a deauthorized token is refused")


def redirected(url):
    """Where a 302 from `url` sends the browser."""
    try:
        urllib.request.build_opener(NoRedirect).open(url, timeout=10)
    except urllib.error.HTTPError as answer:
        if answer.code == 302:
            return answer.headers["Location"]
    raise Mismatch("authorize did not redirect")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    base = sys.argv[1].rstrip("/")
    stripe.api_key = SECRET_KEY
    stripe.api_base = base
    # Connect OAuth is served beside the API; the client reads these once, on its first request.
    stripe.connect_api_base = base
    stripe.client_id = "ca_sandbox_payymo"
    stripe.max_network_retries = 2
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = stripe.WebhookEndpoint.create(url=f"http://127.0.0.1:{server.server_port}/hook", enabled_events=["*"])
    check(endpoint.secret.startswith("whsec_"), "a new webhook endpoint shows its signing secret")
    check(stripe.Account.retrieve().object == "account", "the account is read")
    try:
        intent = payments(base)
        many_charges(300)
        payouts(base)
        webhooks(endpoint, intent)
        restricted(base)
        oauth(base)
    except (Mismatch, stripe.StripeError) as error:
        print(f"FAIL {error!r}", file=sys.stderr)
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
