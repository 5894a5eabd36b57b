//! The one error type of the API and the one place that turns it into a
//! response: `{"error": {"code", "message"}}` plus the headers a code needs.
//! Internal details never reach the client; they go to the audit log.

use http::{header, HeaderValue, Method, StatusCode};

#[derive(Debug)]
pub enum ApiError {
    Validation(String),
    /// A new password the policy refuses; says which rule.
    WeakPassword(&'static str),
    InvalidJson,
    Forbidden(&'static str),
    UsernameTaken,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited {
        retry_after: u64,
    },
    InvalidCredentials,
    AccountLocked {
        retry_after: u64,
    },
    MissingToken,
    InvalidToken,
    NotFound,
    MethodNotAllowed {
        allow: Vec<Method>,
    },
    Unavailable,
    /// Another request is changing the same account; retry shortly.
    Busy,
    /// The change would leave no admin.
    LastAdmin,
    /// The user named in an admin route does not exist.
    UserNotFound,
    /// An `mfa_token` that is forged, expired, spent or superseded.
    InvalidMfaToken,
    /// A wrong (or replayed) TOTP or recovery code.
    InvalidMfaCode,
    /// Enrolment asked for while two-factor login is already on.
    MfaAlreadyEnabled,
    /// A confirmation with no enrolment pending (or one that expired).
    MfaNotPending,
    /// Two-factor login is not on for this account.
    MfaNotEnabled,
    /// A variable that does not parse: logged as `config_error`, answered as 500.
    Config(String),
    /// Anything unexpected (a store failure, say): logged, answered generically.
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl From<crate::config::ConfigError> for ApiError {
    fn from(e: crate::config::ConfigError) -> Self {
        ApiError::Config(e.0)
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::WeakPassword(_) | ApiError::InvalidJson => {
                StatusCode::BAD_REQUEST
            }
            ApiError::InvalidCredentials
            | ApiError::MissingToken
            | ApiError::InvalidToken
            | ApiError::InvalidMfaToken
            | ApiError::InvalidMfaCode => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::UserNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UsernameTaken
            | ApiError::LastAdmin
            | ApiError::MfaAlreadyEnabled
            | ApiError::MfaNotPending
            | ApiError::MfaNotEnabled => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::AccountLocked { .. } => StatusCode::LOCKED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable | ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Config(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_error",
            ApiError::WeakPassword(_) => "weak_password",
            ApiError::InvalidJson => "invalid_json",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::UsernameTaken => "username_taken",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::AccountLocked { .. } => "account_locked",
            ApiError::MissingToken => "missing_token",
            ApiError::InvalidToken => "invalid_token",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Unavailable => "unavailable",
            ApiError::Busy => "account_busy",
            ApiError::LastAdmin => "last_admin",
            ApiError::UserNotFound => "user_not_found",
            ApiError::InvalidMfaToken => "invalid_mfa_token",
            ApiError::InvalidMfaCode => "invalid_mfa_code",
            ApiError::MfaAlreadyEnabled => "mfa_already_enabled",
            ApiError::MfaNotPending => "mfa_not_pending",
            ApiError::MfaNotEnabled => "mfa_not_enabled",
            ApiError::Config(_) | ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::Validation(m) => m.clone(),
            ApiError::WeakPassword(m) => (*m).into(),
            ApiError::InvalidJson => "Request body is not valid JSON".into(),
            ApiError::Forbidden(m) => (*m).into(),
            ApiError::UsernameTaken => "Username is already taken".into(),
            ApiError::PayloadTooLarge => "Request body is larger than 16 KiB".into(),
            ApiError::UnsupportedMediaType => "Content-Type must be application/json".into(),
            ApiError::RateLimited { .. } => "Too many requests; try again later".into(),
            ApiError::InvalidCredentials => "Invalid username or password".into(),
            ApiError::AccountLocked { .. } => {
                "Account is temporarily locked after too many failed logins".into()
            }
            ApiError::MissingToken => "A Bearer token is required".into(),
            ApiError::InvalidToken => "The token is invalid or has expired".into(),
            ApiError::NotFound => "No such resource".into(),
            ApiError::MethodNotAllowed { .. } => "Method not allowed for this resource".into(),
            ApiError::Unavailable => "Service temporarily unavailable".into(),
            ApiError::Busy => "The account is being changed by another request; retry".into(),
            ApiError::LastAdmin => "The last admin cannot be demoted or deleted".into(),
            ApiError::UserNotFound => "No such user".into(),
            ApiError::InvalidMfaToken => {
                "The mfa_token is invalid, expired or already used; log in again".into()
            }
            ApiError::InvalidMfaCode => "Invalid two-factor code".into(),
            ApiError::MfaAlreadyEnabled => "Two-factor login is already on".into(),
            ApiError::MfaNotPending => {
                "No two-factor enrolment is pending (it may have expired); enrol again".into()
            }
            ApiError::MfaNotEnabled => "Two-factor login is not on for this account".into(),
            ApiError::Config(_) | ApiError::Internal(_) => "An internal error occurred".into(),
        }
    }

    /// Headers this error adds to the response.
    pub fn headers(&self) -> Vec<(header::HeaderName, HeaderValue)> {
        match self {
            ApiError::RateLimited { retry_after } | ApiError::AccountLocked { retry_after } => {
                vec![(header::RETRY_AFTER, HeaderValue::from(*retry_after))]
            }
            ApiError::Busy => vec![(header::RETRY_AFTER, HeaderValue::from(1))],
            // RFC 6750 §3: a 401 for a protected resource carries the Bearer challenge.
            ApiError::MissingToken => vec![(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"secure-backend\""),
            )],
            ApiError::InvalidToken => vec![(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"secure-backend\", error=\"invalid_token\", error_description=\"The token is invalid or has expired\"",
                ),
            )],
            ApiError::MethodNotAllowed { allow } => {
                let list = allow.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
                HeaderValue::try_from(list)
                    .map(|v| vec![(header::ALLOW, v)])
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": { "code": self.code(), "message": self.message() } })
    }
}

/// One error of every kind, for the contract test (every code must be in
/// `openapi.yaml`). The unit test below fails to compile when a variant is
/// added without a sample.
pub fn samples() -> Vec<ApiError> {
    vec![
        ApiError::Validation(String::new()),
        ApiError::WeakPassword(""),
        ApiError::InvalidJson,
        ApiError::Forbidden(""),
        ApiError::UsernameTaken,
        ApiError::PayloadTooLarge,
        ApiError::UnsupportedMediaType,
        ApiError::RateLimited { retry_after: 1 },
        ApiError::InvalidCredentials,
        ApiError::AccountLocked { retry_after: 1 },
        ApiError::MissingToken,
        ApiError::InvalidToken,
        ApiError::NotFound,
        ApiError::MethodNotAllowed { allow: Vec::new() },
        ApiError::Unavailable,
        ApiError::Busy,
        ApiError::LastAdmin,
        ApiError::UserNotFound,
        ApiError::InvalidMfaToken,
        ApiError::InvalidMfaCode,
        ApiError::MfaAlreadyEnabled,
        ApiError::MfaNotPending,
        ApiError::MfaNotEnabled,
        ApiError::Config(String::new()),
        ApiError::Internal(anyhow::anyhow!("")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A distinct number per variant: a new variant fails to compile here
    /// until it is numbered, and then `samples` must hold it.
    fn variant(e: &ApiError) -> usize {
        match e {
            ApiError::Validation(_) => 0,
            ApiError::InvalidJson => 1,
            ApiError::Forbidden(_) => 2,
            ApiError::UsernameTaken => 3,
            ApiError::PayloadTooLarge => 4,
            ApiError::UnsupportedMediaType => 5,
            ApiError::RateLimited { .. } => 6,
            ApiError::InvalidCredentials => 7,
            ApiError::AccountLocked { .. } => 8,
            ApiError::MissingToken => 9,
            ApiError::InvalidToken => 10,
            ApiError::NotFound => 11,
            ApiError::MethodNotAllowed { .. } => 12,
            ApiError::Unavailable => 13,
            ApiError::Busy => 14,
            ApiError::LastAdmin => 15,
            ApiError::UserNotFound => 16,
            ApiError::Config(_) => 17,
            ApiError::Internal(_) => 18,
            ApiError::WeakPassword(_) => 19,
            ApiError::InvalidMfaToken => 20,
            ApiError::InvalidMfaCode => 21,
            ApiError::MfaAlreadyEnabled => 22,
            ApiError::MfaNotPending => 23,
            ApiError::MfaNotEnabled => 24,
        }
    }
    const VARIANTS: usize = 25;

    #[test]
    fn samples_hold_every_variant_once() {
        let mut seen: Vec<usize> = samples().iter().map(variant).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..VARIANTS).collect::<Vec<_>>());
    }
}
