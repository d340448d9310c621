//! The check every remote query passes before it reaches its source, on the source's own
//! grammar (sqlparser's parse tree, never text matching): one read-only SELECT whose every
//! relation is a CTE of the query or a remote table the caller may read, and whose every
//! function the source allows. A source says through its [`Flavour`] how it names
//! relations and which functions and table functions it allows; the walk is the same.

use super::Refusal;
use sqlparser::ast::{
    Expr, Ident, ObjectName, Query, Select, SetExpr, Statement, TableFactor, Visit, VisitMut, Visitor, VisitorMut,
};
use sqlparser::dialect::Dialect;
use sqlparser::parser::Parser;
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// What differs between the sources' SQL.
pub trait Flavour {
    /// A relation as the source reads its name: a folded name, a path…
    type Name: Clone;
    fn dialect(&self) -> &dyn Dialect;
    /// An identifier as the source folds it.
    fn fold(&self, ident: &Ident) -> String;
    /// A relation's name; `None` when it is no name a remote query may read.
    fn name(&self, name: &ObjectName) -> Option<Self::Name>;
    /// The folded name, when the relation could be a CTE of the query.
    fn cte_name<'a>(&self, name: &'a Self::Name) -> Option<&'a str>;
    /// Whether a table function (`FROM f(…)`) may be called.
    fn table_function(&self, name: &ObjectName) -> Result<(), Refusal>;
    /// Whether a function may be called.
    fn function(&self, name: &ObjectName) -> Result<(), Refusal>;
    /// Further checks of a query of the source's own.
    fn query(&self, _query: &Query) -> Result<(), Refusal> {
        Ok(())
    }
    /// Why a relation `resolve` does not know is refused.
    fn unknown(&self, name: &Self::Name) -> Refusal;
}

/// One statement of `sql`.
pub fn parse<F: Flavour>(flavour: &F, sql: &str) -> Result<Statement, Refusal> {
    let mut statements = Parser::parse_sql(flavour.dialect(), sql).map_err(|e| Refusal::Invalid(e.to_string()))?;
    match statements.len() {
        1 => Ok(statements.remove(0)),
        0 => Err(Refusal::NotSelect("no statement".into())),
        n => Err(Refusal::NotSelect(format!("{n} statements; send one SELECT"))),
    }
}

/// The start of a refused piece of SQL, to say what it was.
fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Every CTE name of the statement, folded.
fn ctes<F: Flavour>(flavour: &F, statement: &Statement) -> BTreeSet<String> {
    struct Ctes<'a, F>(&'a F, BTreeSet<String>);
    impl<F: Flavour> Visitor for Ctes<'_, F> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            for cte in query.with.iter().flat_map(|w| &w.cte_tables) {
                self.1.insert(self.0.fold(&cte.alias.name));
            }
            ControlFlow::Continue(())
        }
    }
    let mut c = Ctes(flavour, BTreeSet::new());
    let _ = statement.visit(&mut c);
    c.1
}

/// The relation a table factor names, unless it is one of `ctes`.
fn relation<F: Flavour>(flavour: &F, ctes: &BTreeSet<String>, name: &ObjectName) -> Option<Option<F::Name>> {
    let n = flavour.name(name)?;
    Some(match flavour.cte_name(&n) {
        Some(cte) if ctes.contains(cte) => None,
        _ => Some(n),
    })
}

/// The relations the statements of `sql` read, CTEs left out; `None` when it does not
/// parse in the source's dialect (it is then no remote query). Collected whatever else the
/// statement does, so a write naming a remote table is routed to the check that refuses it.
pub fn relations<F: Flavour>(flavour: &F, sql: &str) -> Option<Vec<F::Name>> {
    let statements = Parser::parse_sql(flavour.dialect(), sql).ok()?;
    struct Collect<'a, F: Flavour> {
        flavour: &'a F,
        ctes: BTreeSet<String>,
        found: Vec<F::Name>,
    }
    impl<F: Flavour> Visitor for Collect<'_, F> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table { name, args: None, .. } = factor {
                if let Some(Some(n)) = relation(self.flavour, &self.ctes, name) {
                    self.found.push(n);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut found = Vec::new();
    for statement in &statements {
        let mut c = Collect { flavour, ctes: ctes(flavour, statement), found: Vec::new() };
        let _ = statement.visit(&mut c);
        found.extend(c.found);
    }
    Some(found)
}

/// Walks the parse tree once, refusing what a remote query may not do and collecting the
/// relations it reads.
struct Check<'a, F: Flavour> {
    flavour: &'a F,
    ctes: BTreeSet<String>,
    relations: Vec<F::Name>,
    top: bool,
}

fn verdict(outcome: Result<(), Refusal>) -> ControlFlow<Refusal> {
    match outcome {
        Ok(()) => ControlFlow::Continue(()),
        Err(r) => ControlFlow::Break(r),
    }
}

impl<F: Flavour> Visitor for Check<'_, F> {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        let top = std::mem::replace(&mut self.top, false);
        match statement {
            Statement::Query(_) if top => ControlFlow::Continue(()),
            other => ControlFlow::Break(Refusal::NotSelect(first_words(&other.to_string()))),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        match query.body.as_ref() {
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) | SetExpr::Table(_) => {
                ControlFlow::Break(Refusal::NotSelect(first_words(&query.body.to_string())))
            }
            _ => verdict(self.flavour.query(query)),
        }
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Refusal> {
        if select.into.is_some() {
            return ControlFlow::Break(Refusal::NotSelect("SELECT INTO".into()));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Refusal> {
        verdict(match factor {
            TableFactor::Table { name, args: Some(_), .. } | TableFactor::Function { name, .. } => {
                self.flavour.table_function(name)
            }
            TableFactor::Table { name, args: None, .. } => match relation(self.flavour, &self.ctes, name) {
                Some(Some(n)) => {
                    self.relations.push(n);
                    Ok(())
                }
                Some(None) => Ok(()),
                None => Err(Refusal::Relation),
            },
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } | TableFactor::UNNEST { .. } => Ok(()),
            other => Err(Refusal::NotSelect(first_words(&other.to_string()))),
        })
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Refusal> {
        match expr {
            Expr::Function(f) => verdict(self.flavour.function(&f.name)),
            _ => ControlFlow::Continue(()),
        }
    }
}

/// `sql` checked and rewritten for its source: every relation that is not a CTE must be
/// one `resolve` knows (the caller's readable remote tables), and is replaced by what
/// `place` makes of `resolve`'s answer (the source's own name of the table).
pub fn rewrite<F: Flavour, R>(
    flavour: &F,
    sql: &str,
    resolve: &dyn Fn(&F::Name) -> Option<R>,
    place: &dyn Fn(R) -> ObjectName,
) -> Result<String, Refusal> {
    let mut statement = parse(flavour, sql)?;
    let mut check = Check { flavour, ctes: ctes(flavour, &statement), relations: Vec::new(), top: true };
    if let ControlFlow::Break(refusal) = statement.visit(&mut check) {
        return Err(refusal);
    }
    if let Some(unknown) = check.relations.iter().find(|r| resolve(r).is_none()) {
        return Err(flavour.unknown(unknown));
    }
    struct Qualify<'a, F: Flavour, R> {
        flavour: &'a F,
        ctes: &'a BTreeSet<String>,
        resolve: &'a dyn Fn(&F::Name) -> Option<R>,
        place: &'a dyn Fn(R) -> ObjectName,
    }
    impl<F: Flavour, R> VisitorMut for Qualify<'_, F, R> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table { name, args: None, .. } = factor {
                if let Some(Some(resolved)) =
                    relation(self.flavour, self.ctes, name).map(|n| n.and_then(|n| (self.resolve)(&n)))
                {
                    *name = (self.place)(resolved);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = VisitMut::visit(&mut statement, &mut Qualify { flavour, ctes: &check.ctes, resolve, place });
    Ok(statement.to_string())
}

/// One scan of one table: `SELECT cols FROM table [WHERE filter] [ORDER BY …] [LIMIT n]`.
pub struct Scan<'a> {
    /// What the statement calls the table before it is rewritten to the source's name.
    pub from: &'a str,
    pub select: &'a [String],
    pub filter: Option<&'a str>,
    pub order_by: &'a [String],
    pub limit: Option<u64>,
    /// A column name as the table has it; `None` for a column it does not have.
    pub column: &'a dyn Fn(&str) -> Option<String>,
    /// A column name quoted in the source's SQL.
    pub quote: &'a dyn Fn(&str) -> String,
}

impl Scan<'_> {
    /// The scan's SQL, each part checked on its own: columns and order keys are columns
    /// of the table (quoted, so nothing else), the filter is exactly one boolean expression
    /// over them (parsed alone, so it cannot close the statement or add clauses). The
    /// caller sends it through [`rewrite`] with this table only, so the filter reads no
    /// other relation and calls only what the source allows.
    pub fn sql<F: Flavour>(&self, flavour: &F) -> Result<String, Refusal> {
        let unknown: Vec<&String> = self.select.iter().filter(|c| (self.column)(c).is_none()).collect();
        if !unknown.is_empty() {
            return Err(Refusal::Invalid(format!("unknown columns: {unknown:?}")));
        }
        let list = if self.select.is_empty() {
            "*".to_string()
        } else {
            let columns = self.select.iter().filter_map(|c| (self.column)(c));
            columns.map(|c| (self.quote)(&c)).collect::<Vec<_>>().join(", ")
        };
        let mut sql = format!("SELECT {list} FROM {}", self.from);
        if let Some(filter) = self.filter.map(str::trim).filter(|f| !f.is_empty()) {
            sql.push_str(&format!(" WHERE {}", self.filter(flavour, filter)?));
        }
        if !self.order_by.is_empty() {
            let keys = self.order_by.iter().map(|k| self.order_key(k)).collect::<Result<Vec<_>, _>>()?;
            sql.push_str(&format!(" ORDER BY {}", keys.join(", ")));
        }
        if let Some(n) = self.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        Ok(sql)
    }

    fn filter<F: Flavour>(&self, flavour: &F, filter: &str) -> Result<Expr, Refusal> {
        let mut parser =
            Parser::new(flavour.dialect()).try_with_sql(filter).map_err(|e| Refusal::Invalid(format!("where: {e}")))?;
        let expr = parser.parse_expr().map_err(|e| Refusal::Invalid(format!("where: {e}")))?;
        if parser.peek_token().token != sqlparser::tokenizer::Token::EOF {
            return Err(Refusal::NotSelect("more than one expression in where".into()));
        }
        struct Columns<'a>(&'a dyn Fn(&str) -> Option<String>);
        impl Visitor for Columns<'_> {
            type Break = String;
            fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
                let first = match expr {
                    Expr::Identifier(i) => Some(i),
                    Expr::CompoundIdentifier(parts) => parts.first(),
                    _ => None,
                };
                match first {
                    Some(i) if (self.0)(&i.value).is_none() => ControlFlow::Break(i.value.clone()),
                    _ => ControlFlow::Continue(()),
                }
            }
        }
        if let ControlFlow::Break(column) = expr.visit(&mut Columns(self.column)) {
            return Err(Refusal::Invalid(format!("where: unknown column {column:?}")));
        }
        Ok(expr)
    }

    /// `column [asc|desc]`.
    fn order_key(&self, key: &str) -> Result<String, Refusal> {
        let mut words = key.split_whitespace();
        let column = words
            .next()
            .and_then(|c| (self.column)(c))
            .ok_or_else(|| Refusal::Invalid(format!("order_by: {key:?} is not `column [asc|desc]` of this table")))?;
        let direction = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None => "",
            Some("asc") => " ASC",
            Some("desc") => " DESC",
            Some(other) => return Err(Refusal::Invalid(format!("order_by: {other:?} is not asc or desc"))),
        };
        if words.next().is_some() {
            return Err(Refusal::Invalid(format!("order_by: {key:?} is not `column [asc|desc]`")));
        }
        Ok(format!("{}{direction}", (self.quote)(&column)))
    }
}
