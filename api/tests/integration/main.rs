//! `sluice-api`'s integration tests, in one test binary (each module was its own binary, and
//! each linked kube and its CEL interpreter again).

mod bad_users;
mod cel;
mod compile;
mod crds;
mod manifest;
mod properties;
