"""Signs webhook payloads with Stripe's official Python library and records
its own verdict, so the Rust verifier is tested against the reference.

Usage: python scripts/stripe_signatures.py OUT.json
"""
import json
import sys
import time

import stripe
from stripe import WebhookSignature

SECRET = "whsec_test_secret"
OTHER = "whsec_someone_else"


def verdict(payload, header, secret):
    try:
        stripe.Webhook.construct_event(payload, header, secret, tolerance=300)
        return True
    except Exception:  # SignatureVerificationError, or a missing header
        return False


def main(out):
    now = int(time.time())
    payload = json.dumps({
        "id": "evt_1SigTest00000000000000000",
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": now,
        "type": "checkout.session.completed",
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": {"id": "cs_test_sig", "object": "checkout.session", "payment_status": "paid",
                            "metadata": {"visitpay_action_id": "act_x", "visitpay_clinic_id": "clinic-a"}}},
    }, separators=(",", ":"))
    good = WebhookSignature.generate_signature_header(payload, SECRET, now)
    good_sig = good.split("v1=")[1]
    cases = [
        ("valid", payload, good),
        ("wrong_secret", payload, WebhookSignature.generate_signature_header(payload, OTHER, now)),
        ("tampered_body", payload.replace('"paid"', '"unpaid"'), good),
        ("stale_10_minutes", payload, WebhookSignature.generate_signature_header(payload, SECRET, now - 600)),
        ("several_v1", payload, f"t={now},v1={'0' * 64},v1={good_sig}"),
        ("v0_only", payload, f"t={now},v0={good_sig}"),
        ("no_header", payload, None),
    ]
    records = [
        {"name": name, "payload": body, "header": header, "library_accepts": verdict(body, header, SECRET)}
        for name, body, header in cases
    ]
    with open(out, "w") as f:
        json.dump({"now": now, "secret": SECRET, "cases": records}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
