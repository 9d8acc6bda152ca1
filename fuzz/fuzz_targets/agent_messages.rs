//! Whatever an (authenticated) agent sends: length-delimited `AgentMessage`s fed to the hub
//! the way the gRPC server does, then the status views read. No panic, bounded state.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sluice_operator::hub::{Hub, MAX_SESSIONS_PER_AGENT};
use sluice_proto::v1::{self as pb, agent_message::Body};

fuzz_target!(|data: &[u8]| {
    let (hub, _dirty) = Hub::new(Duration::ZERO);
    let mut buf = data;
    let mut streams: Vec<(String, u64)> = Vec::new();
    while let Ok(msg) = pb::AgentMessage::decode_length_delimited(&mut buf) {
        match msg.body {
            Some(Body::Hello(h)) => {
                let id = hub.agent_connected("ns/gw", &h);
                streams.push((h.pod, id));
            }
            Some(Body::Ack(a)) => {
                if let Some((pod, id)) = streams.last() {
                    hub.agent_ack("ns/gw", pod, *id, &a);
                }
            }
            Some(Body::Report(r)) => {
                if let Some((pod, id)) = streams.last() {
                    hub.agent_report("ns/gw", pod, *id, r);
                }
            }
            None => {
                if let Some((pod, id)) = streams.pop() {
                    hub.agent_gone("ns/gw", &pod, id);
                }
            }
        }
    }
    let view = hub.gateway_view("ns/gw");
    for a in view.agents.values() {
        assert!(a.sessions.len() <= MAX_SESSIONS_PER_AGENT);
        for s in &a.sessions {
            let _ = hub.user_view("ns/gw", &s.source);
        }
    }
});
