use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub const RULE: &'static str = "role must be \"user\" or \"admin\"";

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match raw {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            _ => Err(Self::RULE),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}
