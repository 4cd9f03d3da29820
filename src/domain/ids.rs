//! Opaque, prefixed resource ids (`ten_…`, `key_…`): the prefix says what an id names, the rest is
//! a UUIDv7 in hex, so ids sort roughly by creation time. An id that does not parse names nothing,
//! so handlers answer it with 404, exactly like an id that parses but does not exist.

use std::fmt;

/// An id with a resource prefix, parsed from text that may be anything.
pub trait PrefixedId: Sized {
    /// `None` unless `value` is this kind of id.
    fn parse(value: &str) -> Option<Self>;
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// `None` unless `value` is this kind of id.
            pub fn parse(value: &str) -> Option<Self> {
                is_prefixed_id(value, $prefix).then(|| Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps an id read back from the database, which only ever stores valid ids.
            pub fn from_db(value: String) -> Self {
                Self(value)
            }
        }

        impl PrefixedId for $name {
            fn parse(value: &str) -> Option<Self> {
                $name::parse(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

prefixed_id!(
    /// A tenant: the unit of isolation.
    TenantId, "ten"
);
prefixed_id!(
    /// A person who can sign in.
    UserId, "usr"
);
prefixed_id!(
    /// An API key (not the secret: that is shown once and stored hashed).
    ApiKeyId, "key"
);
prefixed_id!(
    /// An OAuth2 client; doubles as its `client_id`.
    OAuthClientId, "cli"
);
prefixed_id!(
    /// One refresh token.
    RefreshTokenId, "rtk"
);
prefixed_id!(
    /// A chain of rotated refresh tokens from one login.
    RefreshFamilyId, "rtf"
);
prefixed_id!(
    /// An audit log entry.
    AuditLogId, "aud"
);
prefixed_id!(
    /// An event (what happened), as listed at `/events` and delivered by webhooks.
    EventId, "evt"
);
prefixed_id!(
    /// A webhook endpoint: a URL a tenant's events are delivered to.
    WebhookEndpointId, "we"
);
prefixed_id!(
    /// One event's delivery to one endpoint, with its attempts.
    WebhookDeliveryId, "whd"
);
prefixed_id!(
    /// A bank connection: one consent at one bank, covering one or more accounts.
    BankConnectionId, "bc"
);
prefixed_id!(
    /// A bank account reached through a bank connection.
    BankAccountId, "ba"
);
prefixed_id!(
    /// A bank transaction.
    TransactionId, "txn"
);
prefixed_id!(
    /// A categorisation rule: conditions on a transaction and the category they set.
    CategorizationRuleId, "cr"
);
prefixed_id!(
    /// One on-demand application of the categorisation rules to existing transactions.
    CategorizationRuleRunId, "crr"
);
prefixed_id!(
    /// A transaction import: one uploaded CSV file processed in the background.
    ImportId, "imp"
);
prefixed_id!(
    /// A customer: who invoices are addressed to.
    CustomerId, "cus"
);
prefixed_id!(
    /// An invoice: an amount a customer owes.
    InvoiceId, "inv"
);
prefixed_id!(
    /// A tenant's connection to its Stripe account.
    StripeConnectionId, "sc"
);
prefixed_id!(
    /// A reconciliation match: bank transactions, what they pay, and the adjustments between.
    MatchId, "match"
);
prefixed_id!(
    /// A match the reconciliation engine proposes for one transaction.
    SuggestionId, "sug"
);
prefixed_id!(
    /// A reconciliation rule: a pattern on a transaction and what it does.
    ReconciliationRuleId, "rrule"
);
prefixed_id!(
    /// A reconciliation run over a date range.
    ReconciliationRunId, "rrun"
);

fn is_prefixed_id(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_carry_their_prefix() {
        let id = TenantId::generate();
        assert!(id.as_str().starts_with("ten_"));
        assert_eq!(TenantId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(ApiKeyId::parse(id.as_str()), None, "a tenant id is not an API key id");
    }

    #[test]
    fn malformed_ids_do_not_parse() {
        for bad in [
            "",
            "ten_",
            "ten_123",
            "ten_0192F3C4D5E6478FA1B2C3D4E5F60718",
            "ten-0192f3c4d5e6478fa1b2c3d4e5f60718",
            "ten_0192f3c4d5e6478fa1b2c3d4e5f6071'",
        ] {
            assert_eq!(TenantId::parse(bad), None, "{bad}");
        }
        assert!(TenantId::parse("ten_0192f3c4d5e6478fa1b2c3d4e5f60718").is_some());
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = ApiKeyId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ApiKeyId::generate();
        assert!(a < b);
    }
}
