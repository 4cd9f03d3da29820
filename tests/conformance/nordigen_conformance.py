#!/usr/bin/env python3
"""Conformance check: drive the GoCardless Bank Account Data simulator with the official
`nordigen` client (PyPI nordigen==1.4.2), unchanged, and verify every answer's shape.

Usage: nordigen_conformance.py BASE_URL   (e.g. http://127.0.0.1:8081)
Exits 0 when everything matched, 1 on the first mismatch, 2 on bad usage or a missing client.
"""

import re
import sys
import urllib.error
import urllib.request

try:
    from nordigen import NordigenClient
    from requests.models import HTTPError
except ImportError:
    print("the nordigen client is missing: pip install nordigen==1.4.2", file=sys.stderr)
    sys.exit(2)

SECRET_ID = "sandbox-secret-id"
SECRET_KEY = "sandbox-secret-key"
INSTITUTION = "SANDBOXFINANCE_SFIN0000"
AMOUNT = re.compile(r"^-?\d+\.\d{2}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Mismatch(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Mismatch(what)
    print(f"ok   {what}")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def approve(link):
    """GET the hosted consent page, then POST its Approve form; return the redirect target."""
    with urllib.request.urlopen(link, timeout=10) as page:
        html = page.read().decode()
    check("Approve" in html and "Reject" in html, "consent page offers Approve and Reject")
    match = re.search(r'action="([^"]*/approve)"', html)
    check(match is not None, "consent page has an approve form")
    origin = re.match(r"^(https?://[^/]+)", link).group(1)
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(origin + match.group(1), data=b"", method="POST")
    try:
        opener.open(request, timeout=10)
    except urllib.error.HTTPError as redirect:
        check(redirect.code == 302, f"approve answers 302 (got {redirect.code})")
        return redirect.headers["Location"]
    raise Mismatch("approve did not redirect")


def run(base):
    client = NordigenClient(secret_id=SECRET_ID, secret_key=SECRET_KEY, base_url=f"{base}/api/v2")

    token = client.generate_token()
    check(isinstance(token["access"], str) and token["access"], "token/new gives an access token")
    check(token["access_expires"] == 86400, "access_expires is 86400")
    check(token["refresh_expires"] == 2592000, "refresh_expires is 2592000")

    institutions = client.institution.get_institutions(country="GB")
    check(isinstance(institutions, list) and institutions, "institutions is a non-empty array")
    sandbox = [i for i in institutions if i["id"] == INSTITUTION]
    check(len(sandbox) == 1, f"{INSTITUTION} is listed for GB")
    check(isinstance(sandbox[0]["transaction_total_days"], str), "transaction_total_days is a string")
    check(client.institution.get_institution_id_by_name("GB", "Sandbox Finance") == INSTITUTION,
          "get_institution_id_by_name finds the sandbox bank")
    one = client.institution.get_institution_by_id(INSTITUTION)
    check(one["id"] == INSTITUTION and "supported_features" in one, "institutions/{id}/ has supported_features")

    agreement = client.agreement.create_agreement(
        institution_id=INSTITUTION, max_historical_days=180, access_valid_for_days=30)
    check(agreement["max_historical_days"] == 180 and agreement["access_valid_for_days"] == 30,
          "agreement echoes its limits")
    check(agreement["accepted"] is None, "a new agreement is not accepted")
    fetched = client.agreement.get_agreement_by_id(agreement["id"])
    check(fetched["id"] == agreement["id"], "get_agreement_by_id returns it")
    try:
        client.agreement.create_agreement(institution_id=INSTITUTION, max_historical_days=9999)
        raise Mismatch("an out-of-range max_historical_days was accepted")
    except HTTPError as error:
        body = error.args[0]
        check(body["status"] == 400 and body["response"]["summary"] == "Incorrect max_historical_days",
              "out-of-range max_historical_days is a 400 with the reference summary")

    requisition = client.requisition.create_requisition(
        redirect_uri="https://app.example/callback", reference_id="conformance-1",
        institution_id=INSTITUTION, agreement=agreement["id"])
    check(requisition["status"] == "CR", "a new requisition is CR")
    check(requisition["link"].startswith(base), "the requisition link points at the simulator")

    location = approve(requisition["link"])
    check(location == "https://app.example/callback?ref=conformance-1", f"redirect to the callback ({location})")

    linked = client.requisition.get_requisition_by_id(requisition["id"])
    check(linked["status"] == "LN", "the approved requisition is LN")
    check(len(linked["accounts"]) >= 1, "the requisition has accounts")

    for account_id in linked["accounts"]:
        account = client.account_api(id=account_id)
        meta = account.get_metadata()
        check(meta["status"] == "READY" and meta["iban"] and meta["institution_id"] == INSTITUTION,
              f"account {account_id} metadata is READY with an IBAN")
        details = account.get_details()
        check(details["account"]["iban"] == meta["iban"], "details carry the same IBAN")
        balances = account.get_balances()["balances"]
        check(balances and all(AMOUNT.match(b["balanceAmount"]["amount"]) for b in balances),
              "balances are decimal strings")
        transactions = account.get_transactions(date_from=None, date_to=None)["transactions"]
        booked, pending = transactions["booked"], transactions["pending"]
        check(len(booked) > 0, f"{len(booked)} booked transactions")
        for t in booked:
            if not (AMOUNT.match(t["transactionAmount"]["amount"]) and DATE.match(t["bookingDate"])
                    and t["internalTransactionId"] and t["transactionId"] and DATE.match(t["valueDate"])):
                raise Mismatch(f"bad booked transaction {t}")
        check(True, "booked transactions have ids, dates and decimal amounts")
        check(all("internalTransactionId" not in t and "bookingDate" not in t for t in pending),
              f"{len(pending)} pending transactions lack internalTransactionId and bookingDate")
        check(any(re.search(r"INV-\d{4}-\d{4}", t.get("remittanceInformationUnstructured", ""), re.I)
                  for t in booked), "some remittance texts carry invoice numbers")

    refreshed = client.exchange_token(token["refresh"])
    check(refreshed["access"] and refreshed["access"] != token["access"], "token/refresh gives a new access token")
    check(client.institution.get_institutions(country="GB"), "the refreshed token works")

    deleted = client.requisition.delete_requisition(requisition["id"])
    check(deleted["summary"] == "Requisition deleted", "delete_requisition answers 'Requisition deleted'")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        run(sys.argv[1].rstrip("/"))
    except Mismatch as mismatch:
        print(f"FAIL {mismatch}", file=sys.stderr)
        return 1
    except HTTPError as error:
        print(f"FAIL unexpected HTTP error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - any other failure is a mismatch too
        print(f"FAIL {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("all nordigen conformance checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
