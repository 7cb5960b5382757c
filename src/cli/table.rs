//! The plain-text table of `get`: aligned columns under a header.

use std::io::Write;

/// Writes rows under a header, each column as wide as its widest cell, two spaces apart.
pub fn write_table(
    out: &mut dyn Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_to_the_widest_cell() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["web".to_owned(), "3".to_owned()],
            vec!["a-long-name".to_owned(), "10".to_owned()],
        ];
        write_table(&mut out, &["SERVICE", "MAX"], &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SERVICE      MAX\nweb          3\na-long-name  10\n"
        );
    }
}
