//! CORS: what the clinic web app, on its own origin, may send and read. In
//! AWS, API Gateway answers preflights from the template's
//! `CorsConfiguration` (checked against these lists by tests/template.rs);
//! locally, `visitpay-local` answers them from the same lists.

/// The methods the API's routes use, from the route table.
pub fn allow_methods() -> Vec<&'static str> {
    super::functions::methods()
}
/// The request headers the API reads (`if-none-match` for conditional reads).
pub const ALLOW_HEADERS: &[&str] = &["authorization", "content-type", "idempotency-key", "if-none-match"];
/// The response headers a browser client needs to read.
pub const EXPOSE_HEADERS: &[&str] = &["etag", "idempotent-replayed", "retry-after"];
pub const MAX_AGE_SECS: u32 = 600;

/// The origins allowed to call the API from a browser; exact matches only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// A comma-separated list of origins (`https://emr.example.com`); a
    /// wildcard is refused, as the template's parameter says.
    pub fn from_list(list: &str) -> Result<Self, String> {
        let origins: Vec<String> =
            list.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect();
        if let Some(bad) =
            origins.iter().find(|o| o.contains('*') || !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(format!("{bad:?} is not an origin (scheme://host[:port], no wildcard)"));
        }
        Ok(Cors { origins })
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }

    /// The answer to a preflight from `origin`: the allowed methods and
    /// headers for a configured origin, nothing for any other.
    pub fn preflight(&self, origin: &str) -> Vec<(&'static str, String)> {
        if !self.allows(origin) {
            return Vec::new();
        }
        vec![
            ("access-control-allow-origin", origin.to_owned()),
            ("access-control-allow-methods", allow_methods().join(",")),
            ("access-control-allow-headers", ALLOW_HEADERS.join(",")),
            ("access-control-max-age", MAX_AGE_SECS.to_string()),
            ("vary", "origin".to_owned()),
        ]
    }

    /// The headers added to an actual response for `origin`.
    pub fn response(&self, origin: &str) -> Vec<(&'static str, String)> {
        if !self.allows(origin) {
            return Vec::new();
        }
        vec![
            ("access-control-allow-origin", origin.to_owned()),
            ("access-control-expose-headers", EXPOSE_HEADERS.join(",")),
            ("vary", "origin".to_owned()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_get_cors_headers() {
        let cors = Cors::from_list("https://emr.example.com, http://127.0.0.1:5173/").unwrap();
        assert!(cors.allows("https://emr.example.com") && cors.allows("http://127.0.0.1:5173"));
        assert!(cors.preflight("https://evil.example.com").is_empty());
        assert!(cors.response("https://emr.example.com.evil.test").is_empty());
        let pre = cors.preflight("https://emr.example.com");
        assert!(pre.contains(&(
            "access-control-allow-headers",
            "authorization,content-type,idempotency-key,if-none-match".into()
        )));
        assert!(Cors::from_list("*").is_err() && Cors::from_list("https://*.example.com").is_err());
        assert_eq!(Cors::from_list("").unwrap(), Cors::default());
    }
}
