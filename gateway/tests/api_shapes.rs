//! The learned-MAC records the daemon writes are valid `LearnedMac` objects of
//! the api model (whose wire types deny unknown fields), so the store client
//! can post them as they are.

use api::model::LearnedMac;
use gateway::file_store::LearnedRecord;

#[test]
fn learned_record_is_an_api_learned_mac() {
    let rec = LearnedRecord {
        reporter: "gw1".into(),
        logical_switch: "web".into(),
        mac: "02:00:00:00:aa:01".parse().unwrap(),
    };
    let json = serde_json::to_value(&rec).unwrap();
    let m: LearnedMac = serde_json::from_value(json).unwrap();
    assert_eq!(m.reporter, "gw1");
    assert_eq!(m.logical_switch, "web");
    assert_eq!(m.mac.to_string(), "02:00:00:00:aa:01");
    assert_eq!(m.ip, None);
}
