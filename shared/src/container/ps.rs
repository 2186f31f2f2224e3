//! `ps`: the containers as docker lists them, with docker's switches:
//! `-a`, `-q`, `--filter`, `-n N`, `-l`, `--no-trunc`, `-s`, and
//! `--format` (`table`, `table TEMPLATE`, `json` or a `TEMPLATE` of
//! `{{.Field}}`s, the subset of Go templates `inspect -f` takes).

use super::inspect::{self, Template};
use super::state::{self, Condition, ContainerState, Entry};
use super::{Extension, Filter};
use crate::error::Result;
use serde_json::{json, Value};

/// How long a COMMAND may be before `ps` cuts it (unless `--no-trunc`).
const COMMAND_WIDTH: usize = 24;

/// `--format`: docker's four forms.
#[derive(Clone, Debug, PartialEq)]
pub enum Format {
    /// `table`, or `table TEMPLATE`: a header and aligned columns.
    Table(Option<Template>),
    /// `TEMPLATE` (`json` is `{{json .}}`): one line per container.
    Lines(Template),
}

impl Format {
    /// As docker reads it; `\t` and `\n` typed in the template are a tab
    /// and a newline (docker's formatter replaces them too).
    pub fn parse(text: &str) -> std::result::Result<Format, String> {
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        match text.strip_prefix("table") {
            Some("") => Ok(Format::Table(None)),
            Some(rest) if rest.starts_with([' ', '\t']) => {
                Ok(Format::Table(Some(Template::parse(rest.trim())?)))
            }
            _ if text == "json" => Ok(Format::Lines(Template::parse("{{json .}}")?)),
            _ => Ok(Format::Lines(Template::parse(&text)?)),
        }
    }

    fn template(&self) -> Option<&Template> {
        match self {
            Format::Table(template) => template.as_ref(),
            Format::Lines(template) => Some(template),
        }
    }
}

/// What `ps` was asked.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `-a`: stopped containers too.
    pub all: bool,
    /// `-q`: only the ids.
    pub quiet: bool,
    pub filters: Vec<Filter>,
    /// `-n N` (`-l`: 1): the N last created, whatever their state.
    pub last: Option<usize>,
    /// `--no-trunc`: the whole COMMAND.
    pub no_trunc: bool,
    /// `-s`: the SIZE column.
    pub size: bool,
    pub format: Option<Format>,
}

/// docker's column headers for the fields a template names.
fn header_of(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID".into(),
        "CreatedAt" => "CREATED AT".into(),
        "RunningFor" => "CREATED".into(),
        "Names" => "NAMES".into(),
        other => other.to_uppercase(),
    }
}

/// `ps`'s output.
pub fn ps(options: &Options, extensions: &[&dyn Extension]) -> Result<String> {
    // docker: a status filter looks at stopped containers too, and so do
    // -n and -l.
    let all = options.all
        || options.last.is_some()
        || options
            .filters
            .iter()
            .any(|f| matches!(f, Filter::Status(_)));
    let columns: Vec<&&dyn Extension> = extensions
        .iter()
        .filter(|e| e.ps_header().is_some())
        .collect();
    let mut shown: Vec<Entry> = Vec::new();
    // Newest first: -n takes the first N that pass the filters.
    for entry in state::list() {
        let keep = match &entry {
            Entry::Ok(c) => {
                (all || c.condition() == Condition::Running)
                    && Filter::all_match(&options.filters, c)
            }
            Entry::Broken { .. } => all && options.filters.is_empty(),
        };
        if keep {
            shown.push(entry);
        }
    }
    if let Some(n) = options.last {
        shown.truncate(n);
    }
    if options.quiet {
        return Ok(shown
            .iter()
            .map(|e| match e {
                Entry::Ok(c) => format!("{}\n", c.id),
                Entry::Broken { id, .. } => format!("{id}\n"),
            })
            .collect());
    }
    let template = options.format.as_ref().and_then(Format::template);
    let now = state::now();
    let Some(template) = template else {
        return Ok(default_table(&shown, options, &columns, now));
    };
    let wants_size = options.size || template.names_field("Size");
    let mut lines = Vec::new();
    if matches!(options.format, Some(Format::Table(_))) {
        lines.push(template.header(header_of));
    }
    for entry in &shown {
        // A directory without a record has none of the fields.
        let Entry::Ok(c) = entry else { continue };
        let value = fields(c, options, &columns, wants_size, now);
        lines.push(template.render(&value)?);
    }
    Ok(match options.format {
        Some(Format::Table(_)) => tabulate(&lines),
        _ => lines.iter().map(|l| format!("{l}\n")).collect(),
    })
}

/// minibox's own table (docker's columns, PID added): the default and
/// `--format table`.
fn default_table(
    shown: &[Entry],
    options: &Options,
    columns: &[&&dyn Extension],
    now: f64,
) -> String {
    let mut header: Vec<String> = [
        "CONTAINER ID",
        "NAME",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PID",
    ]
    .map(String::from)
    .to_vec();
    header.extend(
        columns
            .iter()
            .filter_map(|e| e.ps_header().map(String::from)),
    );
    if options.size {
        header.push("SIZE".into());
    }
    let mut rows = vec![header];
    for entry in shown {
        match entry {
            Entry::Ok(c) => {
                let condition = c.condition();
                let mut row = vec![
                    c.id.clone(),
                    c.name.clone(),
                    c.image.clone(),
                    command(c, options.no_trunc),
                    format!("{} ago", state::ago(now - c.created)),
                    state::describe(c, now),
                    c.init
                        .as_ref()
                        .filter(|_| condition == Condition::Running)
                        .map_or("-".into(), |p| p.pid.to_string()),
                ];
                row.extend(columns.iter().map(|e| e.ps_cell(&c.id)));
                if options.size {
                    row.push(size(c));
                }
                rows.push(row);
            }
            Entry::Broken { id, reason } => {
                let mut row = vec![
                    id.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    format!("Dead ({reason})"),
                    "-".into(),
                ];
                row.resize(rows[0].len(), "-".into());
                rows.push(row);
            }
        }
    }
    super::control::table(rows)
}

/// COMMAND as docker shows it: quoted, cut to 24 characters with `…`.
fn command(c: &ContainerState, no_trunc: bool) -> String {
    let mut command = c.command.join(" ");
    if !no_trunc && command.chars().count() > COMMAND_WIDTH {
        command = command.chars().take(COMMAND_WIDTH - 1).collect::<String>() + "…";
    }
    format!("{command:?}")
}

/// SIZE, docker's way: what the container wrote (its layer), and in
/// brackets all it sees (the image too): `12B (virtual 5.06MB)`.
fn size(c: &ContainerState) -> String {
    let written = super::control::disk_usage(&crate::layer::container_dir(&c.id).join("upper"));
    let image = super::control::disk_usage(&c.lower);
    format!(
        "{} (virtual {})",
        crate::image::decimal_size_with(written, 3),
        crate::image::decimal_size_with(written + image, 3)
    )
}

/// The fields a `--format` template may name, docker's names (and PID,
/// minibox's column; an extension's column under its header's name, e.g.
/// stage 08's `.Network`).
fn fields(
    c: &ContainerState,
    options: &Options,
    columns: &[&&dyn Extension],
    wants_size: bool,
    now: f64,
) -> Value {
    let condition = c.condition();
    let state = match condition {
        Condition::Starting => "created",
        Condition::Running if c.paused => "paused",
        Condition::Running => "running",
        Condition::Exited => "exited",
        Condition::Dead => "dead",
    };
    let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mounts: Vec<&str> = c
        .mounts
        .iter()
        .map(|m| {
            if m.kind == "tmpfs" {
                m.destination.as_str()
            } else {
                m.source.as_str()
            }
        })
        .collect();
    let mut value = json!({
        "ID": c.id,
        "Names": c.name,
        "Image": c.image,
        "Command": command(c, options.no_trunc),
        "CreatedAt": created_at(c.created),
        "RunningFor": format!("{} ago", state::ago(now - c.created)),
        "Status": state::describe(c, now),
        "State": state,
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Pid": c.init.as_ref().filter(|_| condition == Condition::Running).map_or(0, |p| p.pid),
        "Size": if wants_size { size(c) } else { String::new() },
    });
    if let Value::Object(map) = &mut value {
        for column in columns {
            if let Some(header) = column.ps_header() {
                map.insert(field_name(header), Value::String(column.ps_cell(&c.id)));
            }
        }
    }
    value
}

/// `NETWORK` → `Network`: an extension's column as a template field.
fn field_name(header: &str) -> String {
    let lower = header.to_lowercase();
    let mut chars = lower.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().collect::<String>() + chars.as_str()
    })
}

/// `2026-12-02 07:12:09 +0000 UTC`: docker's CreatedAt.
fn created_at(seconds: f64) -> String {
    let stamp = inspect::rfc3339(seconds);
    format!("{} {} +0000 UTC", &stamp[..10], &stamp[11..19])
}

/// Lines whose cells are separated by tabs, aligned as docker's
/// tabwriter does (a cell is at least 10 wide, 3 spaces of padding; the
/// last cell of a line is not padded).
fn tabulate(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter(|r| i + 1 < r.len())
                .map(|r| r[i].chars().count() + 3)
                .max()
                .unwrap_or(0)
                .max(10)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                out.push_str(&format!("{cell:<width$}", width = widths[i]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_take_dockers_forms() {
        assert_eq!(Format::parse("table"), Ok(Format::Table(None)));
        let table = Format::parse("table {{.ID}}\\t{{.Names}}").unwrap();
        let Format::Table(Some(template)) = table else {
            panic!("{table:?}")
        };
        assert_eq!(template.header(header_of), "CONTAINER ID\tNAMES");
        assert!(matches!(Format::parse("json"), Ok(Format::Lines(_))));
        assert!(Format::parse("{{.ID").is_err());
        assert!(Format::parse("tablet").is_ok(), "a template of plain text");
    }

    #[test]
    fn tables_align_as_dockers_tabwriter() {
        let lines = ["A\tNAMES".to_string(), "0123456789ab\tweb".to_string()];
        assert_eq!(
            tabulate(&lines),
            "A              NAMES\n0123456789ab   web\n"
        );
        assert_eq!(field_name("NETWORK"), "Network");
        assert_eq!(created_at(0.0), "1970-01-01 00:00:00 +0000 UTC");
    }
}
