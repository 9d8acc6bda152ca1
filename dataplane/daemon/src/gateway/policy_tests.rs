#![allow(clippy::unwrap_used)]

use super::*;

/// The standalone example: alice (PPTP only, no limit), bob (both protocols, static
/// 10.200.0.50, maxSessions 1); PPTP and L2TP/IPsec on.
fn example() -> Runtime {
    crate::config::load_str(include_str!("../../../../examples/standalone.yaml"), None)
        .unwrap()
        .runtime
}

fn call(serves: bool, stopping: bool, draining: bool, authenticated: usize) -> CallContext {
    CallContext {
        serves,
        stopping,
        draining,
        authenticated,
        max_sessions: 2,
    }
}

#[test]
fn calls_are_admitted_by_the_same_rules_in_a_fixed_order() {
    assert_eq!(admit_call(&call(true, false, false, 1)), Ok(()));
    assert_eq!(
        admit_call(&call(false, true, true, 2)),
        Err(CallRefusal::Disabled)
    );
    assert_eq!(
        admit_call(&call(true, true, true, 2)),
        Err(CallRefusal::Stopping)
    );
    assert_eq!(
        admit_call(&call(true, false, true, 2)),
        Err(CallRefusal::Draining)
    );
    assert_eq!(
        admit_call(&call(true, false, false, 2)),
        Err(CallRefusal::GatewayFull)
    );
    let unlimited = CallContext {
        max_sessions: 0,
        ..call(true, false, false, 1_000_000)
    };
    assert_eq!(admit_call(&unlimited), Ok(()));
    assert_eq!(CallRefusal::Draining.setup_result(), SetupResult::Draining);
    assert_eq!(CallRefusal::GatewayFull.setup_result(), SetupResult::Limit);
}

#[test]
fn logins_check_the_user_its_service_and_its_limit() {
    let rt = example();
    let alice = rt.users.get("alice");
    let bob = rt.users.get("bob");
    assert!(admit_login(alice, Protocol::Pptp, 5).is_ok(), "no limit");
    assert_eq!(
        admit_login(alice, Protocol::L2tp, 0).map(|_| ()),
        Err(LoginRefusal::Service(Protocol::L2tp))
    );
    assert!(admit_login(bob, Protocol::L2tp, 0).is_ok());
    let full = admit_login(bob, Protocol::Pptp, 1).map(|_| ());
    assert_eq!(full, Err(LoginRefusal::UserFull(1)));
    assert_eq!(
        full.unwrap_err().to_string(),
        "user already has 1 session(s) (maxSessions)"
    );
    let unknown = admit_login(None, Protocol::Pptp, 0).map(|_| ());
    assert_eq!(unknown, Err(LoginRefusal::UnknownUser));
    assert_eq!(
        LoginRefusal::UnknownUser.setup_result(),
        SetupResult::AuthFailed
    );
    assert_eq!(
        LoginRefusal::Service(Protocol::Pptp).setup_result(),
        SetupResult::Limit
    );
}

#[test]
fn an_authenticated_session_counts_against_the_gateway_then_the_user() {
    let rt = example();
    let bob = &rt.users["bob"];
    assert_eq!(admit_authenticated(0, 99, bob, 0), Ok(()));
    assert_eq!(
        admit_authenticated(2, 2, bob, 1),
        Err(LoginRefusal::GatewayFull)
    );
    assert_eq!(
        admit_authenticated(3, 2, bob, 1),
        Err(LoginRefusal::UserFull(1))
    );
}

#[test]
fn a_reload_keeps_only_sessions_whose_user_protocol_and_address_stay() {
    let old = example();
    let same = example();
    assert!(keeps_session(&old, &same, Protocol::Pptp, "alice"));
    assert!(keeps_session(&old, &same, Protocol::L2tp, "bob"));
    assert!(
        !keeps_session(&old, &same, Protocol::Pptp, "mallory"),
        "unknown user"
    );

    let mut removed = example();
    removed.users.remove("alice");
    assert!(!keeps_session(&old, &removed, Protocol::Pptp, "alice"));
    assert!(keeps_session(&old, &removed, Protocol::Pptp, "bob"));

    let mut no_l2tp = example();
    no_l2tp.l2tp.enabled = false;
    assert!(!keeps_session(&old, &no_l2tp, Protocol::L2tp, "bob"));
    assert!(keeps_session(&old, &no_l2tp, Protocol::Pptp, "bob"));

    let mut service = example();
    if let Some(b) = service.users.get_mut("bob") {
        b.l2tp = false;
    }
    assert!(!keeps_session(&old, &service, Protocol::L2tp, "bob"));

    let mut moved = example();
    if let Some(b) = moved.users.get_mut("bob") {
        b.remote_address = Some([10, 200, 0, 51].into());
    }
    assert!(!keeps_session(&old, &moved, Protocol::Pptp, "bob"));

    let mut limited = example();
    if let Some(a) = limited.users.get_mut("alice") {
        a.max_sessions = 1;
        a.routes.clear();
    }
    assert!(
        keeps_session(&old, &limited, Protocol::Pptp, "alice"),
        "other changes leave sessions alone"
    );
}

#[test]
fn a_session_is_recorded_once_and_counted_until_closed() {
    let mut p = SessionPhase::default();
    p.count();
    assert_eq!(p, SessionPhase::Counted { recorded: false });
    assert!(p.record(), "first outcome is recorded");
    assert!(!p.record(), "and only once");
    assert_eq!(
        p.close(SetupResult::PeerClosed),
        Some(Closing {
            counted: true,
            recorded: true,
            result: SetupResult::PeerClosed
        })
    );
    assert!(p.is_closed());
    assert_eq!(p.close(SetupResult::Error), None, "teardown is idempotent");
    assert!(!p.record());
}

#[test]
fn a_wrong_password_then_a_hang_up_is_an_authentication_failure() {
    let mut p = SessionPhase::default();
    assert!(p.login_failed(), "a password failure");
    let closing = p.close(SetupResult::PeerClosed);
    assert_eq!(closing.map(|c| c.result), Some(SetupResult::AuthFailed));
    assert_eq!(closing.map(|c| c.counted), Some(false));

    // A retry that succeeds forgets the failure.
    let mut p = SessionPhase::default();
    p.login_failed();
    p.login_succeeded();
    let closing = p.close(SetupResult::Timeout);
    assert_eq!(closing.map(|c| c.result), Some(SetupResult::Timeout));
}

#[test]
fn a_policy_refusal_is_not_a_password_failure() {
    let mut p = SessionPhase::default();
    p.login_refused();
    assert!(p.record());
    assert!(
        !p.login_failed(),
        "the refusal's AuthFailed event is no guess"
    );
    let closing = p.close(SetupResult::PeerClosed);
    assert_eq!(
        closing,
        Some(Closing {
            counted: false,
            recorded: true,
            result: SetupResult::PeerClosed
        })
    );
}
