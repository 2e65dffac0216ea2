//! The 1 KiB JSON item of the document benchmarks (benches/document.rs,
//! benches/cosmos_ae.rs): an order with nested objects and an array,
//! padded with clear fields to 1 KiB.

use serde_json::{json, Value};

/// The item; its encrypted paths are chosen by each benchmark.
pub fn item_1kib() -> Value {
    let mut doc = json!({
        "id": "order-000123",
        "tenant": "contoso",
        "patient": {"name": "Jane Q. Public", "ssn": "078-05-1120", "dob": "1970-01-01"},
        "email": "jane.public@example.com",
        "country": "NL",
        "items": [
            {"sku": "A-1", "qty": 2, "price": 12.5},
            {"sku": "B-7", "qty": 1, "price": 99.99}
        ],
        "notes": "Allergic to penicillin. Follow-up in two weeks.",
    });
    // pad with clear fields to 1 KiB
    let mut i = 0;
    while serde_json::to_vec(&doc).unwrap().len() < 1024 {
        doc[format!("clear_{i}")] = json!("lorem ipsum dolor sit amet");
        i += 1;
    }
    doc
}
