//! Row-level helpers the queries share: time and step conversions, the user's row,
//! failure counters, and adding a device in one transaction.

use std::time::SystemTime;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::factors::lockout::FailureRecord;
pub(super) use crate::store::columns::{self, from_unix, step_to_db, to_unix};
use crate::store::DeviceAdded;

/// A session's sign-in method as stored; an unknown name makes the row unreadable.
pub(super) fn stored_method(name: &str) -> rusqlite::Result<crate::factors::SignInMethod> {
    columns::stored_method(name)
        .map_err(|why| rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, why.into()))
}

/// Creates the user's row if it is not there yet.
pub(super) fn ensure_user(conn: &Connection, user: &str, now: SystemTime) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO users (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        params![user, to_unix(now)],
    )?;
    Ok(())
}

/// One column of the user's row; `None` when the user has no row yet. `column` is
/// always a constant of this file, never input.
pub(super) fn user_column<T: rusqlite::types::FromSql>(
    conn: &Connection,
    user: &str,
    column: &'static str,
) -> rusqlite::Result<Option<T>> {
    conn.query_row(
        &format!("SELECT {column} FROM users WHERE name = ?1"),
        params![user],
        |row| row.get(0),
    )
    .optional()
}

/// Sets one column of the user's row, creating the row first if need be. `column`
/// is always a constant of this file, never input.
pub(super) fn set_user_column<T: rusqlite::ToSql>(
    conn: &mut Connection,
    user: &str,
    column: &'static str,
    value: T,
    now: SystemTime,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    ensure_user(&tx, user, now)?;
    tx.execute(
        &format!("UPDATE users SET {column} = ?2 WHERE name = ?1"),
        params![user, value],
    )?;
    tx.commit()
}

pub(super) fn read_failures(conn: &Connection, key: &str) -> rusqlite::Result<FailureRecord> {
    conn.query_row(
        "SELECT count, last_failure, locked_until FROM failures WHERE subject = ?1",
        params![key],
        |row| {
            Ok(FailureRecord {
                count: u32::try_from(row.get::<_, i64>(0)?).unwrap_or(u32::MAX),
                last_failure: row.get::<_, Option<i64>>(1)?.map(from_unix),
                locked_until: row.get::<_, Option<i64>>(2)?.map(from_unix),
            })
        },
    )
    .optional()
    .map(Option::unwrap_or_default)
}

pub(super) fn write_failures(conn: &Connection, key: &str, record: &FailureRecord) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO failures (subject, count, last_failure, locked_until) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (subject) DO UPDATE SET
             count = excluded.count, last_failure = excluded.last_failure, locked_until = excluded.locked_until",
        params![
            key,
            i64::from(record.count),
            record.last_failure.map(to_unix),
            record.locked_until.map(to_unix)
        ],
    )?;
    Ok(())
}

/// Stores a confirmed device if the user has fewer than `at_most` and the name is
/// free, in one transaction (enrolments finishing at once store what the limit
/// allows).
pub(super) fn add_device(
    conn: &mut Connection,
    user: &str,
    name: &str,
    sealed_secret: Vec<u8>,
    confirmed_step: u64,
    now: SystemTime,
    at_most: usize,
) -> rusqlite::Result<DeviceAdded> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (existing, same_name): (i64, i64) = tx.query_row(
        "SELECT COUNT(*) + (SELECT COUNT(*) FROM security_keys WHERE user_name = ?1),
                COUNT(*) FILTER (WHERE name = ?2)
         FROM totp_devices WHERE user_name = ?1",
        params![user, name],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    if !usize::try_from(existing).is_ok_and(|n| n < at_most) {
        return Ok(DeviceAdded::LimitReached);
    }
    if same_name > 0 {
        return Ok(DeviceAdded::NameTaken);
    }
    ensure_user(&tx, user, now)?;
    tx.execute(
        "INSERT INTO totp_devices (user_name, name, sealed_secret, created_at, last_used_at)
         VALUES (?1, ?2, ?3, ?4, ?4)",
        params![user, name, sealed_secret, to_unix(now)],
    )?;
    let id = tx.last_insert_rowid();
    // An opened enrolment is used up by the device it let in.
    tx.execute(
        "UPDATE users SET enrolment_open_until = NULL WHERE name = ?1",
        params![user],
    )?;
    tx.execute(
        "UPDATE users SET last_totp_step = ?2
         WHERE name = ?1 AND (last_totp_step IS NULL OR last_totp_step < ?2)",
        params![user, step_to_db(confirmed_step)],
    )?;
    tx.commit()?;
    Ok(DeviceAdded::Added(id))
}
