//! Integration tests: the real Router on 127.0.0.1:0 against the simulated tenant, the real
//! binary over stdio and as a Lambda function, and the cold start against a local Secrets
//! Manager. One test binary, so the crate links once.

mod helpers;

mod auth;
mod catalog;
mod davis;
mod environments;
mod faults;
mod grail;
mod hardening;
mod identity;
mod idp;
mod lambda;
mod metrics;
mod oauth;
mod protocol;
mod reads;
mod secret_scan;
mod secrets;
mod state;
mod stdio;
mod tools;
mod traces;
mod writes;
