//! The floor for a write: a bare redb program that does what every `tracker` write must do in
//! redb's multi-process mode (open the file as one of many processes, commit one small row
//! durably, close), and nothing else. The command-level benchmark compares `new`, `claim --next`
//! and `done` with it: everything above it is the tracker's own cost.
//!
//!     bare-redb FILE    # creates FILE on first use

use redb::{ConcurrencyMode, Database, ReadableTable, TableDefinition};

const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os().nth(1).ok_or("usage: bare-redb FILE")?;
    let mut builder = Database::builder();
    builder.set_concurrency_mode(ConcurrencyMode::MultiWriter);
    let db = builder.create(&path)?;
    let txn = db.begin_write()?;
    {
        let mut rows = txn.open_table(ROWS)?;
        let next = rows.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
        rows.insert(next, [0u8; 200].as_slice())?;
    }
    txn.commit()?;
    drop(db);
    Ok(())
}
