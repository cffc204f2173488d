//! The tables that describe rather than measure: a model's layers, and each framework's defaults.

use tabled::settings::Style;

use reports::Catalogue;

/// A model's layers with output shapes and parameters, in the spirit of Keras's `model.summary()`.
pub fn model_summary(spec: &common::ModelSpec) -> String {
    #[derive(tabled::Tabled)]
    struct Row {
        #[tabled(rename = "layer")]
        layer: String,
        #[tabled(rename = "output shape")]
        output: String,
        #[tabled(rename = "parameters")]
        params: String,
        #[tabled(rename = "count")]
        count: usize,
    }
    let rows = match spec.summary() {
        Ok(rows) => rows,
        Err(e) => return format!("invalid model: {e}"),
    };
    let table_rows: Vec<Row> = rows
        .iter()
        .map(|r| Row {
            layer: r.layer.clone(),
            output: format!(
                "[batch, {}]",
                r.output
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            params: r
                .params
                .iter()
                .map(|p| format!("{} {:?}", p.name, p.shape))
                .collect::<Vec<_>>()
                .join(", "),
            count: r.params.iter().map(common::spec::ParamSpec::numel).sum(),
        })
        .collect();
    let mut table = tabled::Table::new(table_rows);
    table.with(Style::psql());
    format!(
        "{} (input [batch, 1, 28, 28])\n{table}\ntotal parameters: {} in {} tensors\n",
        spec.kind,
        spec.num_params(),
        spec.params().len()
    )
}

/// Each framework's defaults (one row per framework, configurations of one framework sharing it)
/// as Markdown.
pub fn defaults_table(catalogue: &Catalogue) -> String {
    let mut text = String::from(
        "| framework | conv weight | conv bias | linear weight | linear bias | Adam | weight decay | seeded |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mut seen: Vec<&str> = Vec::new();
    for f in &catalogue.frameworks {
        let d = &f.defaults;
        if seen.contains(&d.framework.as_str()) {
            continue;
        }
        seen.push(&d.framework);
        text.push_str(&format!("| {} |\n", d.cells().join(" | ")));
    }
    text
}
