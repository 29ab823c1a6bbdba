//! Keeps docs/FORMAT.md's "Mapped image" tables and the code in step.

use super::header::{FIELDS, MAGIC, VERSION};
use super::redo::{KIND_SCATTER, KIND_WRITE, REDO_HEADER_LEN};
use crate::core::format_doc::{assert_field_table, number, table};

#[test]
fn image_header_table_matches_code() {
    assert_field_table("### Image header slot", &FIELDS);
    let rows = table("### Image header slot");
    let hex = rows[0][3]
        .split('`')
        .nth(1)
        .expect("magic bytes in backquotes");
    let bytes: Vec<u8> = hex
        .split(' ')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    assert_eq!(bytes, MAGIC);
    assert!(rows[1][3].contains(&format!("{VERSION}")));
}

#[test]
fn redo_record_table_matches_code() {
    let rows = table("### Redo record");
    let fields: Vec<(u64, String, String)> = rows
        .iter()
        .map(|r| (number(&r[0]), r[1].clone(), r[2].clone()))
        .collect();
    assert_eq!(
        fields,
        [
            (0, "1".to_string(), "kind".to_string()),
            (1, "8".to_string(), "new_len".to_string()),
            (9, "8".to_string(), "index".to_string()),
            (
                REDO_HEADER_LEN as u64,
                "n × elem_size".to_string(),
                "elements".to_string()
            ),
        ]
    );
    assert!(rows[0][3].contains(&format!("`{KIND_WRITE}`: write")));
    assert!(rows[0][3].contains(&format!("`{KIND_SCATTER}`: scatter")));
}
