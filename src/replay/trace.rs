//! Reading a trace CSV: the `record` format, a plain `timestamp,value` file, or the recorded
//! Swarm metrics (`time` column, ISO timestamps without a zone), into columns over time. The one
//! reader of traces, for `replay` and `model eval` alike.

use std::io::Read;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::error::ReplayError;

/// Names accepted for the time column, which must be the first column.
const TIME_COLUMNS: [&str; 2] = ["timestamp", "time"];
/// Names accepted for the column of per-row ground-truth traffic states (synthetic traces),
/// read as text.
pub const LABEL_COLUMNS: [&str; 2] = ["label", "state"];

/// A trace: rows in increasing time order, numeric columns by name, optional text labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub times: Vec<DateTime<Utc>>,
    /// Each value column, in file order; `None` is an empty cell.
    pub columns: Vec<Column>,
    /// The `label` (or `state`) column, when the trace has one (ground truth of synthetic traces).
    pub labels: Option<Vec<String>>,
    /// Rows whose time repeated the previous row's (an hour repeated by a DST fall-back in a
    /// trace of local times): each replaced the row before it.
    pub repeated: usize,
}

/// One numeric column.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

impl Trace {
    /// Reads a trace file; `source` names it in errors.
    pub fn read_path(path: &Path) -> Result<Trace, ReplayError> {
        let file = std::fs::File::open(path).map_err(|error| ReplayError::Io {
            what: path.display().to_string(),
            error,
        })?;
        Trace::read(&path.display().to_string(), file)
    }

    /// Reads a trace from any reader; `source` names it in errors.
    pub fn read(source: &str, input: impl Read) -> Result<Trace, ReplayError> {
        let bad = |row: usize, problem: String| ReplayError::Trace {
            file: source.to_owned(),
            row,
            problem,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(input);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| bad(1, format!("cannot read the header: {e}")))?
            .iter()
            .map(str::to_owned)
            .collect();
        match header.first() {
            Some(first) if TIME_COLUMNS.contains(&first.as_str()) => {}
            _ => {
                return Err(bad(
                    1,
                    format!(
                        "the first column must be `timestamp` or `time`, the header is {:?}",
                        header.join(",")
                    ),
                ))
            }
        }
        if header.len() < 2 {
            return Err(bad(1, "the header has no value column".to_owned()));
        }
        for (i, name) in header.iter().enumerate() {
            if name.is_empty() {
                return Err(bad(1, format!("column {} has an empty name", i + 1)));
            }
            if header[..i].contains(name) {
                return Err(bad(1, format!("column {name:?} appears twice")));
            }
        }

        let label_index = header
            .iter()
            .position(|h| LABEL_COLUMNS.contains(&h.as_str()));
        let mut trace = Trace {
            times: Vec::new(),
            columns: header
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(i, _)| Some(*i) != label_index)
                .map(|(_, name)| Column {
                    name: name.clone(),
                    values: Vec::new(),
                })
                .collect(),
            labels: label_index.map(|_| Vec::new()),
            repeated: 0,
        };
        for (index, record) in reader.records().enumerate() {
            // Row numbers as a text editor shows them: the header is line 1.
            let row = index + 2;
            let record = record.map_err(|e| bad(row, e.to_string()))?;
            if record.len() != header.len() {
                return Err(bad(
                    row,
                    format!(
                        "has {} cells, the header has {}",
                        record.len(),
                        header.len()
                    ),
                ));
            }
            let at = parse_time(&record[0]).map_err(|problem| bad(row, problem))?;
            if trace.times.last() == Some(&at) {
                // The same time again (a DST fall-back repeats an hour of local times): the
                // later row is the one kept, and the repeat is counted for a note.
                trace.drop_last();
                trace.repeated += 1;
            }
            if let Some(&previous) = trace.times.last() {
                if at <= previous {
                    return Err(bad(
                        row,
                        format!("time {at} is not after the previous row's {previous}"),
                    ));
                }
            }
            trace.times.push(at);
            let mut column = 0;
            for (i, cell) in record.iter().enumerate().skip(1) {
                if Some(i) == label_index {
                    if let Some(labels) = trace.labels.as_mut() {
                        labels.push(cell.to_owned());
                    }
                    continue;
                }
                let value = parse_value(cell).map_err(|problem| {
                    bad(row, format!("column {:?}: {problem}", header[i].as_str()))
                })?;
                trace.columns[column].values.push(value);
                column += 1;
            }
        }
        if trace.times.len() < 2 {
            return Err(bad(
                trace.times.len() + 1,
                format!(
                    "a trace needs at least two rows, this one has {}",
                    trace.times.len()
                ),
            ));
        }
        Ok(trace)
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The names of the value columns, comma-separated, for error messages.
    pub fn column_names(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The rows with `from <= time < to`.
    pub fn select(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Trace, ReplayError> {
        let keep = |at: &DateTime<Utc>| from.is_none_or(|f| *at >= f) && to.is_none_or(|t| *at < t);
        let first = self.times.iter().position(keep);
        let last = self.times.iter().rposition(keep);
        let (Some(first), Some(last)) = (first, last) else {
            return Err(ReplayError::EmptyRange {
                first: self.times[0],
                last: self.times[self.times.len() - 1],
            });
        };
        let range = first..last + 1;
        if range.len() < 2 {
            return Err(ReplayError::EmptyRange {
                first: self.times[0],
                last: self.times[self.times.len() - 1],
            });
        }
        Ok(Trace {
            times: self.times[range.clone()].to_vec(),
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    values: c.values[range.clone()].to_vec(),
                })
                .collect(),
            labels: self.labels.as_ref().map(|l| l[range].to_vec()),
            repeated: self.repeated,
        })
    }

    /// Removes the last row.
    fn drop_last(&mut self) {
        self.times.pop();
        for column in &mut self.columns {
            column.values.pop();
        }
        if let Some(labels) = self.labels.as_mut() {
            labels.pop();
        }
    }

    /// The note a reader of results should see when rows repeated a time, if any did.
    pub fn repeat_note(&self) -> Option<String> {
        (self.repeated > 0).then(|| {
            format!(
                "{} row(s) repeated the previous row's time (e.g. a DST fall-back hour); the later row of each was kept",
                self.repeated
            )
        })
    }

    /// The usual spacing of rows: the median difference between consecutive timestamps.
    pub fn step(&self) -> chrono::Duration {
        let mut steps: Vec<chrono::Duration> = self.times.windows(2).map(|w| w[1] - w[0]).collect();
        steps.sort();
        steps[steps.len() / 2]
    }
}

/// RFC 3339 (`2024-05-01T12:00:05.000Z`), an ISO date-time without a zone (taken as UTC, as in
/// the recorded Swarm metrics), or Unix seconds.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Utc.from_utc_datetime(&at));
        }
    }
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() {
            let millis = (seconds * 1000.0).round() as i64;
            if let Some(at) = DateTime::from_timestamp_millis(millis) {
                return Ok(at);
            }
        }
    }
    Err(format!(
        "time {text:?} is not RFC 3339 (2024-05-01T12:00:05Z), an ISO date-time or Unix seconds"
    ))
}

/// A `--from`/`--to` bound: a date (midnight UTC) or anything [`parse_time`] takes.
pub fn parse_bound(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(midnight) = date.and_hms_opt(0, 0, 0) {
            return Ok(Utc.from_utc_datetime(&midnight));
        }
    }
    parse_time(text)
}

/// An empty cell is a missing sample; so are `NaN` and infinities, which no source means as load.
fn parse_value(cell: &str) -> Result<Option<f64>, String> {
    if cell.is_empty() {
        return Ok(None);
    }
    match cell.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(Some(value)),
        Ok(_) => Ok(None),
        Err(_) => Err(format!("{cell:?} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Trace, ReplayError> {
        Trace::read("t.csv", text.as_bytes())
    }

    #[test]
    fn a_repeated_time_keeps_the_later_row_and_is_counted() {
        let trace = read(
            "timestamp,rps\n2024-11-03T00:00:00,1\n2024-11-03T01:00:00,2\n\
             2024-11-03T01:00:00,3\n2024-11-03T02:00:00,4\n",
        )
        .unwrap();
        assert_eq!(trace.times.len(), 3);
        assert_eq!(
            trace.columns[0].values,
            vec![Some(1.0), Some(3.0), Some(4.0)]
        );
        assert_eq!(trace.repeated, 1);
        assert!(trace
            .repeat_note()
            .unwrap()
            .starts_with("1 row(s) repeated"));
        // Going back in time is still an error.
        assert!(read("timestamp,rps\n2024-11-03T01:00:00,1\n2024-11-03T00:00:00,2\n").is_err());
    }

    #[test]
    fn reads_the_record_format_with_empty_cells() {
        let trace = read(
            "timestamp,rps,latency\n2024-05-01T12:00:00.000Z,1.5,0.1\n2024-05-01T12:00:05.000Z,,0.2\n",
        )
        .unwrap();
        assert_eq!(trace.times.len(), 2);
        assert_eq!(trace.column("rps").unwrap().values, vec![Some(1.5), None]);
        assert_eq!(trace.step(), chrono::Duration::seconds(5));
    }

    #[test]
    fn reads_zone_less_times_as_utc_and_labels_as_text() {
        let trace =
            read("time,value,label\n2023-06-17T00:00:00,3,normal\n2023-06-17T00:00:05,4,flood\n")
                .unwrap();
        assert_eq!(
            trace.times[0],
            Utc.with_ymd_and_hms(2023, 6, 17, 0, 0, 0).unwrap()
        );
        assert_eq!(trace.labels.unwrap(), vec!["normal", "flood"]);
        assert_eq!(trace.columns.len(), 1);
    }

    #[test]
    fn names_row_and_column_of_a_bad_cell() {
        let error = read("timestamp,rps\n0,1\n5,abc\n").unwrap_err().to_string();
        assert!(
            error.contains("row 3") && error.contains("\"rps\"") && error.contains("abc"),
            "{error}"
        );
    }

    #[test]
    fn refuses_time_going_backwards_and_a_missing_time_column() {
        let error = read("timestamp,rps\n5,1\n4,2\n").unwrap_err().to_string();
        assert!(
            error.contains("row 3") && error.contains("not after"),
            "{error}"
        );
        let error = read("rps,cpu\n1,2\n3,4\n").unwrap_err().to_string();
        assert!(error.contains("`timestamp` or `time`"), "{error}");
    }

    #[test]
    fn selects_a_half_open_range() {
        let trace = read("timestamp,v\n0,1\n5,2\n10,3\n15,4\n").unwrap();
        let from = DateTime::from_timestamp(5, 0);
        let to = DateTime::from_timestamp(15, 0);
        let selected = trace.select(from, to).unwrap();
        assert_eq!(
            selected.column("v").unwrap().values,
            vec![Some(2.0), Some(3.0)]
        );
        assert!(trace
            .select(DateTime::from_timestamp(100, 0), None)
            .is_err());
    }
}
