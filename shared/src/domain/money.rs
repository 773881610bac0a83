//! Money is integer minor units with a currency. Sums are checked.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

use super::DomainError;

/// The largest amount one invoice or one action may carry, in minor units.
/// Stripe's own ceiling for card payments in CAD/USD is 99,999,999 (999,999.99).
pub const MAX_AMOUNT: i64 = 99_999_999;

/// Currencies a clinic may bill in. All are two-decimal currencies, so minor
/// units mean cents everywhere; adding a zero-decimal currency (JPY) would need
/// per-currency exponents first.
const SUPPORTED: &[&str] = &["cad", "usd", "eur", "gbp", "chf", "aud", "nzd"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Currency(&'static str);

impl Currency {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let lower = s.to_ascii_lowercase();
        SUPPORTED.iter().find(|c| **c == lower).map(|c| Currency(c)).ok_or(DomainError::InvalidCurrency)
    }
    pub fn code(&self) -> &'static str {
        self.0
    }

    /// The smallest payment Stripe takes in this currency, in minor units
    /// (Stripe, "Minimum and maximum charge amounts": 0.50 in USD, CAD, EUR,
    /// CHF, AUD and NZD; 0.30 in GBP). Checkout refuses a session under it.
    pub fn stripe_minimum(&self) -> i64 {
        match self.0 {
            "gbp" => 30,
            _ => 50,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A positive amount of one currency, at most [`MAX_AMOUNT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Result<Self, DomainError> {
        if amount <= 0 || amount > MAX_AMOUNT {
            return Err(DomainError::InvalidAmount);
        }
        Ok(Money { amount, currency })
    }

    /// Sums amounts of one currency; refuses mixed currencies and totals
    /// above [`MAX_AMOUNT`].
    pub fn sum<'a>(items: impl IntoIterator<Item = &'a Money>) -> Result<Money, DomainError> {
        let mut iter = items.into_iter();
        let first = *iter.next().ok_or(DomainError::EmptySelection)?;
        iter.try_fold(first, |acc, m| {
            if m.currency != acc.currency {
                return Err(DomainError::CurrencyMismatch);
            }
            let amount =
                acc.amount.checked_add(m.amount).filter(|a| *a <= MAX_AMOUNT).ok_or(DomainError::TotalTooLarge)?;
            Ok(Money { amount, currency: acc.currency })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_minimums_per_currency() {
        let min = |c: &str| Currency::parse(c).unwrap().stripe_minimum();
        assert_eq!(
            (min("cad"), min("usd"), min("eur"), min("gbp"), min("chf"), min("aud"), min("nzd")),
            (50, 50, 50, 30, 50, 50, 50)
        );
    }

    fn cad(a: i64) -> Money {
        Money::new(a, Currency::parse("cad").unwrap()).unwrap()
    }

    #[test]
    fn currency_is_case_insensitive_and_normalised() {
        assert_eq!(Currency::parse("CAD").unwrap().code(), "cad");
        assert_eq!(Currency::parse("xyz"), Err(DomainError::InvalidCurrency));
    }

    #[test]
    fn amounts_must_be_positive_and_bounded() {
        let c = Currency::parse("cad").unwrap();
        assert_eq!(Money::new(0, c), Err(DomainError::InvalidAmount));
        assert_eq!(Money::new(-1, c), Err(DomainError::InvalidAmount));
        assert_eq!(Money::new(MAX_AMOUNT + 1, c), Err(DomainError::InvalidAmount));
        assert_eq!(Money::new(MAX_AMOUNT, c).unwrap().amount, MAX_AMOUNT);
    }

    #[test]
    fn sums_are_checked() {
        assert_eq!(Money::sum(&[cad(4500), cad(1500)]).unwrap().amount, 6000);
        assert_eq!(Money::sum(&[cad(MAX_AMOUNT), cad(1)]), Err(DomainError::TotalTooLarge));
        let usd = Money::new(1, Currency::parse("usd").unwrap()).unwrap();
        assert_eq!(Money::sum(&[cad(1), usd]), Err(DomainError::CurrencyMismatch));
        assert_eq!(Money::sum(&[]), Err(DomainError::EmptySelection));
    }
}
