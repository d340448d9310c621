//! The synthetic company behind `agnes demo`: customers, products, orders, order items
//! and web sessions, written as files for the files connector.
//!
//! Every value is a function of the row number and a seed through DuckDB's `hash()`, so
//! the same seed and scale always produce the same data, whatever the thread count.

use crate::{EngineError, Result};
use agnes_core::ident::quote_literal;
use duckdb::Connection;
use std::path::{Path, PathBuf};

/// What one generated table looks like, for registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoTable {
    pub name: &'static str,
    /// Path or glob relative to the files root.
    pub source_table: String,
    pub description: &'static str,
    pub primary_key: &'static [&'static str],
    /// `(partition_by, granularity)` for tables published in parts.
    pub partition: Option<(&'static str, &'static str)>,
}

/// Row counts at a given scale (scale 1 = the default demo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSize {
    pub customers: i64,
    pub products: i64,
    pub orders: i64,
    pub web_sessions: i64,
    pub session_chunk: i64,
}

impl DemoSize {
    pub fn at_scale(scale: f64) -> DemoSize {
        let n = |base: f64, min: i64| ((base * scale).round() as i64).max(min);
        DemoSize {
            customers: n(50_000.0, 50),
            products: n(2_000.0, 20),
            orders: n(400_000.0, 200),
            web_sessions: n(3_000_000.0, 500),
            session_chunk: 500_000,
        }
    }
}

const DIR: &str = "demo";

/// Generate the dataset under `<files_root>/demo/`, calling `progress(table, done, total)`
/// as tables complete. Skips the work when a marker says the same seed and scale are
/// already there. Returns the tables to register.
pub fn generate(
    files_root: &Path,
    scale: f64,
    seed: u64,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<Vec<DemoTable>> {
    let size = DemoSize::at_scale(scale);
    let dir = files_root.join(DIR);
    let marker = dir.join(".agnes-demo");
    let fingerprint = format!("seed={seed} scale={scale} version=1\n");
    let tables = tables();
    let steps = 4 + chunks(&size) as usize;
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(fingerprint.as_str()) {
        progress("(already generated)", steps, steps);
        return Ok(tables);
    }
    let sessions_dir = dir.join("web_sessions");
    let _ = std::fs::remove_dir_all(&sessions_dir);
    std::fs::create_dir_all(&sessions_dir).map_err(EngineError::io("create directory", &sessions_dir))?;

    let conn = crate::duck::open_in_memory()?;
    conn.execute_batch(&format!(
        "CREATE MACRO rnd(i, salt) AS (hash(i, salt, {seed}::UBIGINT) % 1000000)::DOUBLE / 1000000.0;
         CREATE MACRO pick(arr, i, salt) AS arr[(1 + hash(i, salt, {seed}::UBIGINT) % len(arr))::BIGINT];
         CREATE MACRO pickn(i, salt, n) AS (hash(i, salt, {seed}::UBIGINT) % n)::BIGINT;"
    ))?;
    let out = |name: &str| -> PathBuf { dir.join(name) };
    let mut done = 0;
    let mut step = |name: &str, conn: &Connection, sql: String| -> Result<()> {
        conn.execute_batch(&sql)?;
        done += 1;
        progress(name, done, steps);
        Ok(())
    };
    step("customers", &conn, customers_sql(&size, &out("customers.csv")))?;
    step("products", &conn, products_sql(&size, &out("products.json")))?;
    conn.execute_batch(&order_items_table_sql(&size))?;
    step("orders", &conn, orders_sql(&size, &out("orders.csv")))?;
    step(
        "order_items",
        &conn,
        copy_sql("SELECT * FROM order_items ORDER BY order_id, line_no", &out("order_items.parquet"), "FORMAT PARQUET"),
    )?;
    for c in 0..chunks(&size) {
        let path = sessions_dir.join(format!("part-{c:04}.csv"));
        step("web_sessions", &conn, sessions_sql(&size, c, &path))?;
    }
    std::fs::write(&marker, fingerprint).map_err(EngineError::io("write", &marker))?;
    Ok(tables)
}

fn chunks(size: &DemoSize) -> i64 {
    (size.web_sessions + size.session_chunk - 1) / size.session_chunk
}

fn copy_sql(select: &str, path: &Path, options: &str) -> String {
    format!("COPY ({select}) TO {} ({options})", quote_literal(&path.to_string_lossy()))
}

fn tables() -> Vec<DemoTable> {
    vec![
        DemoTable {
            name: "customers",
            source_table: format!("{DIR}/customers.csv"),
            description: "One row per customer account: who they are, where, and which segment.",
            primary_key: &["customer_id"],
            partition: None,
        },
        DemoTable {
            name: "products",
            source_table: format!("{DIR}/products.json"),
            description: "The product catalogue with list price and unit cost.",
            primary_key: &["product_id"],
            partition: None,
        },
        DemoTable {
            name: "orders",
            source_table: format!("{DIR}/orders.csv"),
            description: "One row per order: when, by whom, through which channel, its status and total.",
            primary_key: &["order_id"],
            partition: None,
        },
        DemoTable {
            name: "order_items",
            source_table: format!("{DIR}/order_items.parquet"),
            description: "Order lines: product, quantity, unit price and discount.",
            primary_key: &["order_id", "line_no"],
            partition: None,
        },
        DemoTable {
            name: "web_sessions",
            source_table: format!("{DIR}/web_sessions/*.csv"),
            description: "Website and app sessions, anonymous or signed in, with traffic source and conversion.",
            primary_key: &["session_id"],
            partition: Some(("started_at", "month")),
        },
    ]
}

const FIRST: &str = "['Olivia','Liam','Emma','Noah','Ava','Elijah','Sophia','Lucas','Mia','Mateo','Isabella','Levi','Amelia','Jakub','Eliška','Tomáš','Anna','Jan','Chloé','Lukas','Sofía','Hugo','Zoe','Oskar','Maja','Leon','Hannah','Ravi','Aiko','Wei']";
const LAST: &str = "['Smith','Johnson','Williams','Brown','Jones','Garcia','Miller','Davis','Novák','Svoboda','Dvořák','Müller','Schmidt','Dubois','Martin','Rossi','Kowalski','Nowak','Jansen','de Vries','Silva','Tanaka','Chen','Patel','O''Brien','Fernández','Lindqvist','Horvat','Kim','Nguyen']";
const COUNTRIES: &str = "['US','US','US','US','GB','GB','DE','DE','FR','CZ','CZ','CA','AU','NL','ES','PL','SE','JP']";

fn customers_sql(s: &DemoSize, path: &Path) -> String {
    copy_sql(
        &format!(
            "SELECT i + 1 AS customer_id,
                    pick({FIRST}, i, 'first') || ' ' || pick({LAST}, i, 'last') AS name,
                    lower(replace(pick({FIRST}, i, 'first'), ' ', '')) || '.' || (i + 1) || '@example.com' AS email,
                    pick({COUNTRIES}, i, 'country') AS country,
                    CASE WHEN rnd(i, 'seg') < 0.70 THEN 'consumer' WHEN rnd(i, 'seg') < 0.93 THEN 'smb' ELSE 'enterprise' END AS segment,
                    (DATE '2021-01-01' + CAST(floor(1825 * sqrt(rnd(i, 'signup'))) AS INTEGER)) AS signup_date,
                    rnd(i, 'optin') < 0.42 AS marketing_opt_in,
                    CASE WHEN rnd(i, 'ltv') < 0.08 THEN NULL ELSE round(rnd(i, 'score') * 100, 1) END AS nps_score
             FROM range({n}) t(i)",
            n = s.customers
        ),
        path,
        "HEADER, DELIMITER ',', NULLSTR 'NA'",
    )
}

fn products_sql(s: &DemoSize, path: &Path) -> String {
    copy_sql(
        &format!(
            "SELECT i + 1 AS product_id,
                    'SKU-' || lpad(CAST(i + 1 AS VARCHAR), 6, '0') AS sku,
                    pick(['Classic','Smart','Eco','Pro','Mini','Ultra','Urban','Trail','Studio','Everyday'], i, 'adj') || ' ' ||
                    pick(['Backpack','Kettle','Lamp','Headphones','Jacket','Mug','Desk','Sneakers','Blender','Notebook','Charger','Tent'], i, 'noun') AS name,
                    pick(['Home','Electronics','Apparel','Outdoor','Office','Kitchen'], i, 'cat') AS category,
                    CAST(round(5 + exp(rnd(i, 'price') * 5.5), 2) AS DECIMAL(10,2)) AS list_price,
                    CAST(round((5 + exp(rnd(i, 'price') * 5.5)) * (0.35 + 0.3 * rnd(i, 'margin')), 2) AS DECIMAL(10,2)) AS unit_cost,
                    rnd(i, 'active') < 0.9 AS active
             FROM range({n}) t(i)",
            n = s.products
        ),
        path,
        "FORMAT JSON",
    )
}

/// Order lines first: an order's total is the sum of its lines.
fn order_items_table_sql(s: &DemoSize) -> String {
    format!(
        "CREATE TABLE order_items AS
         WITH lines AS (
             SELECT o + 1 AS order_id, l + 1 AS line_no, o * 7 + l AS k,
                    1 + pickn(o * 7 + l, 'prod', {products}) AS product_id
             FROM range({orders}) a(o), range(6) b(l)
             WHERE l < 1 + CAST(floor(4 * rnd(o, 'nlines') * rnd(o, 'nlines2')) AS INTEGER) + (CASE WHEN rnd(o, 'big') < 0.1 THEN 2 ELSE 0 END)
         )
         SELECT order_id, line_no, product_id,
                1 + CAST(floor(3 * rnd(k, 'qty') * rnd(k, 'qty2')) AS INTEGER) AS quantity,
                -- The product's list price (same formula as the products table).
                CAST(round(5 + exp(rnd(product_id - 1, 'price') * 5.5), 2) AS DECIMAL(10,2)) AS unit_price,
                CAST(CASE WHEN rnd(k, 'disc') < 0.15 THEN 0.1 WHEN rnd(k, 'disc') < 0.2 THEN 0.25 ELSE 0 END AS DECIMAL(4,2)) AS discount
         FROM lines",
        orders = s.orders,
        products = s.products,
    )
}

fn orders_sql(s: &DemoSize, path: &Path) -> String {
    copy_sql(
        &format!(
            "WITH totals AS (
                 SELECT order_id, CAST(SUM(quantity * unit_price * (1 - discount)) AS DECIMAL(12,2)) AS total_amount, count(*) AS items
                 FROM order_items GROUP BY order_id
             ), base AS (
                 SELECT i, i + 1 AS order_id,
                        -- Growth over two years plus a holiday-season bump.
                        CASE WHEN rnd(i, 'holiday') < 0.12
                             THEN TIMESTAMP '2024-11-15' + INTERVAL (365 * CAST(rnd(i, 'year') < 0.55 AS INTEGER)) DAY + INTERVAL (CAST(floor(46 * rnd(i, 'hday')) AS INTEGER)) DAY
                             ELSE TIMESTAMP '2024-01-01' + INTERVAL (CAST(floor(730 * sqrt(rnd(i, 'day'))) AS INTEGER)) DAY
                        END + INTERVAL (CAST(floor(86400 * rnd(i, 'sec')) AS INTEGER)) SECOND AS ordered_at
                 FROM range({n}) t(i)
             )
             SELECT b.order_id,
                    1 + pickn(i, 'cust', {customers}) AS customer_id,
                    b.ordered_at,
                    CASE WHEN rnd(i, 'status') < 0.80 THEN 'completed' WHEN rnd(i, 'status') < 0.88 THEN 'shipped'
                         WHEN rnd(i, 'status') < 0.94 THEN 'cancelled' WHEN rnd(i, 'status') < 0.98 THEN 'refunded' ELSE 'pending' END AS status,
                    pick(['web','web','web','mobile','mobile','store','partner'], i, 'channel') AS channel,
                    CASE WHEN rnd(i, 'coupon') < 0.7 THEN NULL ELSE pick(['WELCOME10','SPRING','BLACKFRIDAY','VIP'], i, 'code') END AS coupon_code,
                    t.items AS item_count,
                    t.total_amount
             FROM base b JOIN totals t USING (order_id)
             ORDER BY b.order_id",
            n = s.orders,
            customers = s.customers
        ),
        path,
        "HEADER, DELIMITER ',', NULLSTR ''",
    )
}

fn sessions_sql(s: &DemoSize, chunk: i64, path: &Path) -> String {
    let start = chunk * s.session_chunk;
    let end = (start + s.session_chunk).min(s.web_sessions);
    copy_sql(
        &format!(
            "SELECT i + 1 AS session_id,
                    CASE WHEN rnd(i, 'anon') < 0.4 THEN NULL ELSE 1 + pickn(i, 'scust', {customers}) END AS customer_id,
                    TIMESTAMP '2024-01-01' + INTERVAL (CAST(floor(730 * sqrt(rnd(i, 'sday'))) AS INTEGER)) DAY
                        + INTERVAL (CAST(floor(86400 * rnd(i, 'ssec')) AS INTEGER)) SECOND AS started_at,
                    CAST(floor(-300 * ln(1 - 0.999 * rnd(i, 'dur'))) AS INTEGER) AS duration_seconds,
                    pick(['desktop','desktop','mobile','mobile','mobile','tablet'], i, 'device') AS device,
                    pick(['organic','organic','paid','email','social','direct','referral'], i, 'src') AS traffic_source,
                    pick(['/','/','/sale','/products','/blog','/product/' || (1 + pickn(i, 'lp', {products}))], i, 'landing') AS landing_page,
                    1 + CAST(floor(-4 * ln(1 - 0.999 * rnd(i, 'pages'))) AS INTEGER) AS pages_viewed,
                    rnd(i, 'conv') < 0.032 AS converted
             FROM range({start}, {end}) t(i)",
            customers = s.customers,
            products = s.products
        ),
        path,
        "HEADER, DELIMITER ','",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_scale_is_deterministic_and_complete() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let mut calls = 0;
        let tables = generate(a.path(), 0.001, 7, |_, _, _| calls += 1).unwrap();
        generate(b.path(), 0.001, 7, |_, _, _| {}).unwrap();
        assert_eq!(tables.len(), 5);
        assert!(calls >= 5);
        for f in ["customers.csv", "products.json", "orders.csv", "order_items.parquet", "web_sessions/part-0000.csv"] {
            let x = std::fs::read(a.path().join(DIR).join(f)).unwrap();
            let y = std::fs::read(b.path().join(DIR).join(f)).unwrap();
            assert!(!x.is_empty(), "{f} is empty");
            assert!(x == y, "{f} differs between runs with the same seed");
        }
        // Marker: a second run is a no-op.
        let mut again = 0;
        generate(a.path(), 0.001, 7, |_, _, _| again += 1).unwrap();
        assert_eq!(again, 1);

        let conn = crate::duck::open_in_memory().unwrap();
        let orders = a.path().join(DIR).join("orders.csv");
        let items = a.path().join(DIR).join("order_items.parquet");
        let (n, mismatched): (i64, i64) = conn
            .query_row(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE o.total_amount <> t.s) FROM read_csv('{}') o
                     JOIN (SELECT order_id, CAST(SUM(quantity * unit_price * (1 - discount)) AS DECIMAL(12,2)) s FROM read_parquet('{}') GROUP BY 1) t USING (order_id)",
                    orders.display(),
                    items.display()
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(n, DemoSize::at_scale(0.001).orders);
        assert_eq!(mismatched, 0, "order totals equal the sum of their lines");
    }
}
