//! JSON renderings of the emulator's records in Stripe's wire shapes (API version below).
//!
//! Every field async-stripe treats as required is present; optional ones are `null` unless
//! there is a plausible value. Keys follow Stripe's object reference so that clients written
//! against real Stripe find what they expect.

use serde_json::{json, Value};

use crate::records::{Account, Charge, Dispute, Event, LineItem, PaymentIntent, Refund, Session, SessionStatus};

pub(crate) const API_VERSION: &str = "2026-09-30.endive";

fn null_address(country: Option<&str>) -> Value {
    json!({"city": null, "country": country, "line1": null, "line2": null, "postal_code": null, "state": null})
}

pub(crate) fn session(s: &Session, livemode: bool) -> Value {
    let open = s.status == SessionStatus::Open;
    let complete = s.status == SessionStatus::Complete;
    let customer_details = complete.then(|| {
        json!({
            "address": null_address(Some("CA")),
            "business_name": null,
            "email": s.customer_email.clone().unwrap_or_else(|| "patient@example.com".into()),
            "individual_name": null,
            "name": "Test Patient",
            "phone": null,
            "tax_exempt": "none",
            "tax_ids": [],
        })
    });
    json!({
        "id": s.id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": false},
        "after_expiration": null,
        "allow_promotion_codes": null,
        "amount_subtotal": s.amount_total,
        "amount_total": s.amount_total,
        "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
        "billing_address_collection": null,
        "branding_settings": null,
        "cancel_url": s.cancel_url,
        "client_reference_id": s.client_reference_id,
        "client_secret": null,
        "collected_information": complete.then(|| json!({"business_name": null, "individual_name": null, "shipping_details": null})),
        "consent": null,
        "consent_collection": null,
        "created": s.created,
        "currency": s.currency,
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
        "customer": null,
        "customer_account": null,
        "customer_creation": "if_required",
        "customer_details": customer_details,
        "customer_email": s.customer_email,
        "discounts": [],
        "excluded_payment_method_types": [],
        "expires_at": s.expires_at,
        "integration_identifier": null,
        "invoice": null,
        "invoice_creation": {
            "enabled": false,
            "invoice_data": {
                "account_tax_ids": null, "custom_fields": null, "description": null, "footer": null,
                "issuer": null, "metadata": {}, "rendering_options": null
            }
        },
        "livemode": livemode,
        "locale": s.locale,
        "managed_payments": null,
        "metadata": s.metadata,
        "mode": "payment",
        "name_collection": null,
        "optional_items": null,
        "origin_context": null,
        "payment_intent": s.payment_intent,
        "payment_link": null,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": s.payment_method_types,
        "payment_status": if s.paid { "paid" } else { "unpaid" },
        "permissions": null,
        "phone_number_collection": {"enabled": false},
        "presentment_details": null,
        "recovered_from": null,
        "redirect_on_completion": null,
        "return_url": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_options": [],
        "status": s.status.as_str(),
        "submit_type": null,
        "subscription": null,
        "success_url": s.success_url,
        "tax_id_collection": null,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        // Stripe only exposes the URL while the session can still be paid.
        "url": open.then(|| s.url.clone()),
        "wallet_options": null,
    })
}

pub(crate) fn price(li: &LineItem) -> Value {
    json!({
        "id": li.price_id,
        "object": "price",
        "active": false,
        "billing_scheme": "per_unit",
        "created": li.created,
        "currency": li.currency,
        "custom_unit_amount": null,
        "livemode": false,
        "lookup_key": null,
        "metadata": {},
        "nickname": null,
        "product": li.product_id,
        "recurring": null,
        "tax_behavior": "unspecified",
        "tiers_mode": null,
        "transform_quantity": null,
        "type": "one_time",
        "unit_amount": li.unit_amount,
        "unit_amount_decimal": li.unit_amount.to_string(),
    })
}

pub(crate) fn line_item(li: &LineItem) -> Value {
    json!({
        "id": li.id,
        "object": "item",
        "adjustable_quantity": null,
        "amount_discount": 0,
        "amount_subtotal": li.amount(),
        "amount_tax": 0,
        "amount_total": li.amount(),
        "currency": li.currency,
        "description": li.name,
        "metadata": null,
        "price": price(li),
        "quantity": li.quantity,
    })
}

pub(crate) fn payment_intent(pi: &PaymentIntent, livemode: bool) -> Value {
    let succeeded = pi.status == "succeeded";
    let last_payment_error = pi.failure_message.as_ref().map(|message| {
        json!({
            "type": "invalid_request_error",
            "code": "payment_method_provider_decline",
            "message": message,
        })
    });
    json!({
        "id": pi.id,
        "object": "payment_intent",
        "amount": pi.amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": if succeeded { pi.amount } else { 0 },
        "application": null,
        "application_fee_amount": pi.application_fee_amount,
        "automatic_payment_methods": null,
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "automatic_async",
        "client_secret": pi.client_secret,
        "confirmation_method": "automatic",
        "created": pi.created,
        "currency": pi.currency,
        "customer": null,
        "customer_account": null,
        "description": pi.description,
        "excluded_payment_method_types": null,
        "last_payment_error": last_payment_error,
        "latest_charge": pi.latest_charge,
        "livemode": livemode,
        "managed_payments": null,
        "metadata": pi.metadata,
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": if pi.failure_message.is_some() { Value::Null } else { json!(pi.payment_method) },
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": [pi.method_type],
        "processing": null,
        "receipt_email": pi.receipt_email,
        "review": null,
        "setup_future_usage": null,
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": pi.status,
        "transfer_data": null,
        "transfer_group": null,
    })
}

fn payment_method_details(method_type: &str) -> Value {
    if method_type == "acss_debit" {
        json!({
            "type": "acss_debit",
            "acss_debit": {
                "bank_name": "STRIPE TEST BANK", "fingerprint": "EmuAcssFingerprint", "institution_number": "000",
                "last4": "6789", "mandate": null, "transit_number": "11000"
            }
        })
    } else {
        json!({
            "type": "card",
            "card": {
                "amount_authorized": null, "authorization_code": null, "brand": "visa",
                "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
                "country": "US", "exp_month": 12, "exp_year": 2034, "fingerprint": "EmuCardFingerprint",
                "funding": "credit", "installments": null, "last4": "4242", "mandate": null, "network": "visa",
                "network_token": {"used": false}, "network_transaction_id": null, "regulated_status": "unregulated",
                "three_d_secure": null, "wallet": null
            }
        })
    }
}

/// A charge; `refunds` only when expanded (`expand[]=refunds`).
pub(crate) fn charge(ch: &Charge, amount_refunded: i64, refunds: Option<Vec<Value>>, livemode: bool) -> Value {
    let mut json = json!({
        "id": ch.id,
        "object": "charge",
        "amount": ch.amount,
        "amount_captured": ch.amount,
        "amount_refunded": amount_refunded,
        "application": null,
        "application_fee": null,
        "application_fee_amount": ch.application_fee_amount,
        "balance_transaction": ch.balance_transaction,
        "billing_details": {
            "address": null_address(Some("CA")),
            "email": ch.billing_email,
            "name": "Test Patient",
            "phone": null,
            "tax_id": null,
        },
        "calculated_statement_descriptor": "VISITPAY",
        "captured": true,
        "created": ch.created,
        "currency": ch.currency,
        "customer": null,
        "description": ch.description,
        "disputed": ch.dispute.is_some(),
        "failure_balance_transaction": null,
        "failure_code": null,
        "failure_message": null,
        "fraud_details": {},
        "livemode": livemode,
        "metadata": ch.metadata,
        "on_behalf_of": null,
        "outcome": {
            "advice_code": null, "network_advice_code": null, "network_decline_code": null,
            "network_status": "approved_by_network", "reason": null, "risk_level": "normal", "risk_score": 12,
            "seller_message": "Payment complete.", "type": "authorized"
        },
        "paid": true,
        "payment_intent": ch.payment_intent,
        "payment_method": ch.payment_method,
        "payment_method_details": payment_method_details(&ch.method_type),
        "receipt_email": null,
        "receipt_number": null,
        "receipt_url": null,
        "refunded": amount_refunded >= ch.amount,
        "review": null,
        "shipping": null,
        "source": null,
        "source_transfer": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": "succeeded",
        "transfer_data": null,
        "transfer_group": null,
    });
    if let Some(refunds) = refunds {
        json["refunds"] = list(refunds, false, &format!("/v1/charges/{}/refunds", ch.id));
    }
    json
}

pub(crate) fn refund(r: &Refund, _livemode: bool) -> Value {
    let destination_details = if r.method_type == "card" {
        json!({"type": "card", "card": {"reference": null, "reference_status": "pending", "reference_type": null, "type": "refund"}})
    } else {
        json!({"type": r.method_type, r.method_type.as_str(): {}})
    };
    let mut json = json!({
        "id": r.id,
        "object": "refund",
        "amount": r.amount,
        "balance_transaction": r.balance_transaction,
        "charge": r.charge,
        "created": r.created,
        "currency": r.currency,
        "customer": null,
        "customer_account": null,
        "destination_details": destination_details,
        "metadata": r.metadata,
        "payment_intent": r.payment_intent,
        "payment_method": r.payment_method,
        "reason": r.reason,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": r.status.as_str(),
        "transfer_reversal": null,
    });
    if let Some(reason) = &r.failure_reason {
        // "the attributes failure_reason and failure_balance_transaction are included" on failure.
        json["failure_reason"] = json!(reason);
        json["failure_balance_transaction"] = json!(refund_failure_transaction(&r.id));
    }
    json
}

pub(crate) fn dispute(d: &Dispute, livemode: bool) -> Value {
    let transactions: Vec<Value> = d
        .balance_transactions
        .iter()
        .map(|(id, amount)| {
            json!({"id": id, "object": "balance_transaction", "amount": amount, "currency": d.currency,
                   "type": "adjustment", "reporting_category": "dispute"})
        })
        .collect();
    json!({
        "id": d.id,
        "object": "dispute",
        "amount": d.amount,
        "balance_transactions": transactions,
        "charge": d.charge,
        "created": d.created,
        "currency": d.currency,
        "enhanced_eligibility_types": [],
        "evidence": {},
        "evidence_details": {"due_by": d.created + 7 * 86_400, "enhanced_eligibility": {}, "has_evidence": false,
                             "past_due": false, "submission_count": 0},
        "is_charge_refundable": d.charge_refundable(),
        "livemode": livemode,
        "metadata": {},
        "payment_intent": d.payment_intent,
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "case_type": "chargeback",
                                   "network_reason_code": null}},
        "reason": d.reason,
        "status": d.status,
    })
}

/// The platform's Connect application, as `account.application.deauthorized` carries it.
pub(crate) fn application() -> Value {
    json!({"id": "ca_visitpayEmulator", "object": "application", "name": "visitpay"})
}

pub(crate) fn event(e: &Event) -> Value {
    let mut event = json!({
        "id": e.id,
        "object": "event",
        "api_version": API_VERSION,
        "created": e.created,
        "data": {"object": e.object},
        "livemode": e.livemode,
        "pending_webhooks": e.pending_webhooks,
        "request": {"id": e.origin.request_id, "idempotency_key": e.origin.idempotency_key},
        "type": e.kind,
    });
    // Stripe only sets `account` on events of connected accounts.
    if let Some(account) = &e.account {
        event["account"] = json!(account);
    }
    event
}

pub(crate) fn list(data: Vec<Value>, has_more: bool, url: &str) -> Value {
    json!({"object": "list", "data": data, "has_more": has_more, "url": url})
}

fn requirements(due: &[String]) -> Value {
    json!({
        "alternatives": [],
        "current_deadline": null,
        "currently_due": due,
        "disabled_reason": if due.is_empty() { Value::Null } else { json!("requirements.past_due") },
        "errors": [],
        "eventually_due": due,
        "past_due": due,
        "pending_verification": [],
    })
}

/// A connected account (https://docs.stripe.com/api/accounts/object): a
/// Standard account, as visitpay's clinics connect them.
pub(crate) fn account(id: &str, account: &Account) -> Value {
    let none: Vec<String> = Vec::new();
    let created = account.created;
    let past_due: Vec<String> = if account.disabled_reason.as_deref() == Some("requirements.past_due") {
        account.requirements_due.clone()
    } else {
        Vec::new()
    };
    let mut current = requirements(&account.requirements_due);
    current["past_due"] = json!(past_due);
    current["eventually_due"] = json!(account.requirements_due);
    current["disabled_reason"] = json!(account.disabled_reason);
    let capability = if account.charges_enabled { "active" } else { "inactive" };
    json!({
        "id": id,
        "object": "account",
        "business_profile": {
            "annual_revenue": null, "estimated_worker_count": null, "mcc": "8011", "name": null,
            "product_description": null, "support_address": null, "support_email": null, "support_phone": null,
            "support_url": null, "url": null, "minority_owned_business_designation": null,
        },
        "business_type": "company",
        "capabilities": {"card_payments": capability, "transfers": capability},
        "charges_enabled": account.charges_enabled,
        "controller": {"type": "account"},
        "country": "CA",
        "created": created,
        "default_currency": "cad",
        "details_submitted": account.details_submitted,
        "email": null,
        "external_accounts": {"data": [], "has_more": false, "object": "list", "url": format!("/v1/accounts/{id}/external_accounts")},
        "future_requirements": requirements(&none),
        "metadata": account.metadata,
        "payouts_enabled": account.payouts_enabled,
        "requirements": current,
        "settings": {
            "branding": {"icon": null, "logo": null, "primary_color": null, "secondary_color": null},
            "card_payments": {"decline_on": {"avs_failure": false, "cvc_failure": true}, "statement_descriptor_prefix": null},
            "dashboard": {"display_name": null, "timezone": "America/Toronto"},
            "payments": {"statement_descriptor": null},
            "payouts": {"debit_negative_balances": true, "schedule": {"delay_days": 2, "interval": "daily"}, "statement_descriptor": null},
        },
        "tos_acceptance": {"date": if account.details_submitted { json!(created) } else { Value::Null }, "ip": null, "user_agent": null},
        "type": "standard",
    })
}

/// The balance transaction that gives a failed refund's money back.
pub(crate) fn refund_failure_transaction(refund_id: &str) -> String {
    format!("txn_fail_{}", refund_id.trim_start_matches("re_"))
}

/// An Account Link (https://docs.stripe.com/api/account_links/object).
pub(crate) fn account_link(link: &crate::records::AccountLink, url: String) -> Value {
    json!({"object": "account_link", "created": link.created, "expires_at": link.expires_at, "url": url})
}

/// A balance transaction (https://docs.stripe.com/api/balance_transactions/object);
/// `source` is the id, or the expanded object.
pub(crate) fn balance_transaction(t: &crate::records::BalanceTransaction, source: Value) -> Value {
    let fee_details: Vec<Value> = if t.fee == 0 {
        Vec::new()
    } else {
        vec![
            json!({"amount": t.fee, "application": null, "currency": t.currency, "description": "Stripe processing fees", "type": "stripe_fee"}),
        ]
    };
    json!({
        "id": t.id,
        "object": "balance_transaction",
        "amount": t.amount,
        "available_on": t.available_on,
        "balance_type": "payments",
        "created": t.created,
        "currency": t.currency,
        "description": null,
        "exchange_rate": null,
        "fee": t.fee,
        "fee_details": fee_details,
        "net": t.net(),
        "reporting_category": t.reporting_category,
        "source": source,
        "status": "available",
        "type": t.kind,
    })
}

/// A payout (https://docs.stripe.com/api/payouts/object).
pub(crate) fn payout(p: &crate::records::Payout, livemode: bool) -> Value {
    json!({
        "id": p.id,
        "object": "payout",
        "amount": p.amount,
        "application_fee": null,
        "application_fee_amount": null,
        "arrival_date": p.arrival_date,
        "automatic": true,
        "balance_transaction": p.balance_transaction,
        "created": p.created,
        "currency": p.currency,
        "description": "STRIPE PAYOUT",
        "destination": "ba_emulator",
        "failure_balance_transaction": p.failure_balance_transaction,
        "failure_code": p.failure_code,
        "failure_message": p.failure_code.map(|_| "The bank account has been closed."),
        "livemode": livemode,
        "metadata": {},
        "method": "standard",
        "original_payout": null,
        "reconciliation_status": "completed",
        "reversed_by": null,
        "source_type": "card",
        "statement_descriptor": null,
        "status": p.status,
        "trace_id": {"status": "supported", "value": null},
        "type": "bank_account",
    })
}
