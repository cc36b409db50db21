//! Machine enrolment: `POST /v1/machines/join`.

use crate::MachineId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub join_token: String,
    pub hostname: String,
    /// SHA-256 of the DER client certificate the machine will present, lowercase hex, when
    /// the machine authenticates with a TLS client certificate instead of an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct JoinResponse {
    pub machine_id: MachineId,
    /// Bearer credential for machine calls. Shown once; the server keeps only its hash.
    pub api_key: String,
    /// Server's Ed25519 public key (32 bytes, base64) that signs offline bundles.
    pub signing_public_key: String,
    /// `sha256:HEX` of the server's TLS certificate.
    pub tls_fingerprint: String,
}
