//! The table definition, read from `shared/aws/tables.json`: the one place that
//! says what the tables, keys and indexes are.

use serde::Deserialize;
use std::collections::BTreeMap;

pub const TABLES_JSON: &str = include_str!("../tables.json");

#[derive(Debug, Clone, Deserialize)]
pub struct TableDef {
    pub logical_id: String,
    pub env: String,
    pub default_name: String,
    pub partition_key: String,
    pub sort_key: String,
    pub attributes: BTreeMap<String, String>,
    pub global_secondary_indexes: Vec<IndexDef>,
    pub ttl_attribute: String,
    /// The table's stream (what publish-action-events reads).
    pub stream_view_type: String,
    pub billing_mode: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IndexDef {
    pub name: String,
    pub partition_key: String,
    pub sort_key: String,
    pub projection: String,
}

#[derive(Deserialize)]
struct File {
    tables: Vec<TableDef>,
}

pub fn definitions() -> Vec<TableDef> {
    serde_json::from_str::<File>(TABLES_JSON).expect("shared/aws/tables.json is valid").tables
}

/// The main table's definition.
pub fn main_table() -> TableDef {
    definitions().into_iter().next().expect("shared/aws/tables.json defines a table")
}
