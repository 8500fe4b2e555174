//! A connection that keeps the statements it prepared.
//!
//! A statement given as text is prepared (one round trip to the server) and then run (a
//! second). [`Connection`] prepares each statement of the store's once per connection and
//! runs it from then on in one round trip, which for most calls halves the time spent
//! waiting on the network.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

/// A client with the statements it prepared, by their SQL. Only the store's own SQL, fixed
/// at build time (`&'static str`), is kept, so the cache cannot grow without bound; SQL made
/// at run time goes through [`Connection::client`].
pub(super) struct Connection {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Connection {
    pub(super) fn new(client: Client) -> Connection {
        Connection { client, statements: HashMap::new() }
    }

    /// The client itself: for SQL made at run time, transactions and simple queries.
    pub(super) fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// `sql`, prepared on this connection the first time it is asked for.
    fn prepared(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    pub(super) fn query(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query(&statement, params)
    }

    pub(super) fn query_one(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Row, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query_one(&statement, params)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query_opt(&statement, params)
    }

    pub(super) fn execute(&mut self, sql: &'static str, params: Params<'_>) -> Result<u64, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.execute(&statement, params)
    }

    /// Runs `sql`, one or more statements without parameters, as simple queries.
    pub(super) fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.client.batch_execute(sql)
    }
}
