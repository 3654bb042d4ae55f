//! `authwatch detectors`: validates detector specs and prints them as the README's Markdown table.

use crate::cli::{load_specs, DetectorsArgs, EXIT_OK};

pub fn run(a: &DetectorsArgs) -> anyhow::Result<i32> {
    let specs = load_specs(a.filters.as_ref())?;
    print!("{}", specs.markdown_table());
    Ok(EXIT_OK)
}
