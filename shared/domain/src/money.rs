//! Money is integer minor units with a currency. Sums are checked.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

use super::{DomainError, Locale};

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

/// Minor units as a person in `locale` reads them (CLDR's fr-CA and en-CA
/// patterns): `60,00 $` and `$60.00`; other dollars say whose (`60,00 $ US`,
/// `US$60.00`). Spaces are no-break, so an amount never wraps.
pub fn format_amount(amount: i64, currency: Currency, locale: Locale) -> String {
    const NBSP: char = '\u{a0}';
    let sign = if amount < 0 { "-" } else { "" };
    let (major, minor) = (amount.unsigned_abs() / 100, amount.unsigned_abs() % 100);
    let digits = major.to_string();
    let separator = match locale {
        Locale::FrCa => NBSP,
        Locale::EnCa => ',',
    };
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(separator);
        }
        grouped.push(digit);
    }
    let (fr_symbol, en_symbol) = match currency.code() {
        "cad" => ("$", "$"),
        "usd" => ("$\u{a0}US", "US$"),
        "aud" => ("$\u{a0}AU", "A$"),
        "nzd" => ("$\u{a0}NZ", "NZ$"),
        "eur" => ("€", "€"),
        "gbp" => ("£", "£"),
        _ => ("CHF", "CHF\u{a0}"),
    };
    match locale {
        Locale::FrCa => format!("{sign}{grouped},{minor:02}{NBSP}{fr_symbol}"),
        Locale::EnCa => format!("{sign}{en_symbol}{grouped}.{minor:02}"),
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
    fn amounts_read_as_in_the_visits_language() {
        let cad = Currency::parse("cad").unwrap();
        let nb = |s: &str| s.replace(' ', "\u{a0}");
        assert_eq!(format_amount(6000, cad, Locale::FrCa), nb("60,00 $"));
        assert_eq!(format_amount(6000, cad, Locale::EnCa), "$60.00");
        assert_eq!(format_amount(123_456_789, cad, Locale::FrCa), nb("1 234 567,89 $"));
        assert_eq!(format_amount(123_456_789, cad, Locale::EnCa), "$1,234,567.89");
        assert_eq!(format_amount(5, cad, Locale::EnCa), "$0.05");
        let usd = Currency::parse("usd").unwrap();
        assert_eq!(format_amount(4500, usd, Locale::FrCa), nb("45,00 $ US"));
        assert_eq!(format_amount(4500, usd, Locale::EnCa), "US$45.00");
        let eur = Currency::parse("eur").unwrap();
        assert_eq!(
            (format_amount(1999, eur, Locale::FrCa), format_amount(1999, eur, Locale::EnCa)),
            (nb("19,99 €"), "€19.99".into())
        );
    }

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
