//! Scopes: what a credential may do. `family:read` / `family:write` per resource family, and `*`
//! for everything. `write` implies `read` of the same family. Roles map to fixed scope sets.

use std::{collections::BTreeSet, fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The resource families scopes are granted on.
pub const FAMILIES: &[&str] = &[
    "transactions",
    "bank_connections",
    "invoices",
    "stripe",
    "payments",
    "reconciliation",
    "webhooks",
    "api_keys",
    "members",
    "audit_logs",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    Read,
    Write,
}

/// One scope: `*`, or a family with an access level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    All,
    Family(&'static str, Access),
}

impl Scope {
    pub const fn read(family: &'static str) -> Self {
        Self::Family(family, Access::Read)
    }

    pub const fn write(family: &'static str) -> Self {
        Self::Family(family, Access::Write)
    }

    /// Whether holding `self` grants `wanted`.
    pub fn grants(self, wanted: Scope) -> bool {
        match (self, wanted) {
            (Scope::All, _) => true,
            (Scope::Family(..), Scope::All) => false,
            (Scope::Family(f, have), Scope::Family(g, want)) => f == g && (have == want || have == Access::Write),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("*"),
            Scope::Family(family, Access::Read) => write!(f, "{family}:read"),
            Scope::Family(family, Access::Write) => write!(f, "{family}:write"),
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "*" {
            return Ok(Scope::All);
        }
        let unknown = || {
            format!("unknown scope {s:?}: expected \"*\" or family:read|write, family one of {}", FAMILIES.join(", "))
        };
        let (family, access) = s.split_once(':').ok_or_else(unknown)?;
        let family = FAMILIES.iter().find(|f| **f == family).ok_or_else(unknown)?;
        match access {
            "read" => Ok(Scope::read(family)),
            "write" => Ok(Scope::write(family)),
            _ => Err(unknown()),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl ToSchema for Scope {}

impl utoipa::PartialSchema for Scope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let mut values = vec!["*".to_owned()];
        for family in FAMILIES {
            values.push(format!("{family}:read"));
            values.push(format!("{family}:write"));
        }
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(values))
            .description(Some("`*`, or `<family>:read` / `<family>:write`; write implies read."))
            .into()
    }
}

/// A set of scopes held by a credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scopes(pub BTreeSet<Scope>);

impl Scopes {
    pub fn grants(&self, wanted: Scope) -> bool {
        self.0.iter().any(|have| have.grants(wanted))
    }

    /// Whether every scope of `other` is granted by `self` (no privilege escalation).
    pub fn covers(&self, other: &Scopes) -> bool {
        other.0.iter().all(|s| self.grants(*s))
    }

    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        values.into_iter().map(str::parse).collect::<Result<BTreeSet<_>, _>>().map(Scopes)
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(Scope::to_string).collect()
    }
}

/// A member's role in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including removing other owners.
    Owner,
    /// Everything but the audit log's verification is theirs too; cannot remove owners.
    Admin,
    /// Day-to-day work: read and write business data, read webhooks and members.
    Member,
    /// Read-only business data.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// The scopes a user with this role holds.
    pub fn scopes(self) -> Scopes {
        const BUSINESS: &[&str] =
            &["transactions", "bank_connections", "invoices", "stripe", "payments", "reconciliation"];
        let mut set = BTreeSet::new();
        match self {
            Role::Owner => {
                set.insert(Scope::All);
            }
            Role::Admin => {
                set.extend(FAMILIES.iter().map(|f| Scope::write(f)));
            }
            Role::Member => {
                set.extend(BUSINESS.iter().map(|f| Scope::write(f)));
                set.insert(Scope::read("webhooks"));
                set.insert(Scope::read("members"));
            }
            Role::Viewer => {
                set.extend(BUSINESS.iter().map(|f| Scope::read(f)));
            }
        }
        Scopes(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_reject_unknowns() {
        for s in ["*", "transactions:read", "api_keys:write"] {
            assert_eq!(s.parse::<Scope>().unwrap().to_string(), s);
        }
        for bad in ["", "transactions", "transactions:delete", "nope:read", "*:read"] {
            assert!(bad.parse::<Scope>().is_err(), "{bad}");
        }
    }

    #[test]
    fn write_implies_read_and_star_implies_everything() {
        assert!(Scope::write("invoices").grants(Scope::read("invoices")));
        assert!(!Scope::read("invoices").grants(Scope::write("invoices")));
        assert!(!Scope::write("invoices").grants(Scope::read("payments")));
        assert!(Scope::All.grants(Scope::write("members")));
        assert!(!Scope::write("members").grants(Scope::All));
    }

    #[test]
    fn covers_prevents_escalation() {
        let admin = Role::Admin.scopes();
        assert!(admin.covers(&Scopes::parse_all(["api_keys:read", "transactions:write"]).unwrap()));
        assert!(!admin.covers(&Scopes::parse_all(["*"]).unwrap()));
        assert!(Role::Owner.scopes().covers(&Scopes::parse_all(["*"]).unwrap()));
    }

    #[test]
    fn roles_grant_what_they_say() {
        assert!(Role::Member.scopes().grants(Scope::write("transactions")));
        assert!(!Role::Member.scopes().grants(Scope::write("api_keys")));
        assert!(Role::Viewer.scopes().grants(Scope::read("invoices")));
        assert!(!Role::Viewer.scopes().grants(Scope::write("invoices")));
        assert!(!Role::Viewer.scopes().grants(Scope::read("audit_logs")));
    }
}
