//! The performance guide's capacity table, and the row a load needs.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Row {
    pub users: (u64, u64),
    pub daily_requests: (u64, u64),
    pub cpu_cores: u32,
    pub ram_gb: u32,
    pub storage_gb: u32,
    /// The last row is open-ended ("64+ cores, 128 GB+").
    pub open_ended: bool,
}

/// "Capacity Planning: Growth Projections" of the guide.
pub const TABLE: [Row; 4] = [
    Row {
        users: (1, 10),
        daily_requests: (100, 1_000),
        cpu_cores: 8,
        ram_gb: 16,
        storage_gb: 50,
        open_ended: false,
    },
    Row {
        users: (10, 50),
        daily_requests: (1_000, 5_000),
        cpu_cores: 16,
        ram_gb: 32,
        storage_gb: 100,
        open_ended: false,
    },
    Row {
        users: (50, 200),
        daily_requests: (5_000, 20_000),
        cpu_cores: 32,
        ram_gb: 64,
        storage_gb: 200,
        open_ended: false,
    },
    Row {
        users: (200, 1_000),
        daily_requests: (20_000, 100_000),
        cpu_cores: 64,
        ram_gb: 128,
        storage_gb: 500,
        open_ended: true,
    },
];

/// The smallest row that holds both the users and the daily requests.
pub fn row_for(users: u64, daily_requests: u64) -> Row {
    TABLE
        .iter()
        .find(|r| users <= r.users.1 && daily_requests <= r.daily_requests.1)
        .copied()
        .unwrap_or(TABLE[TABLE.len() - 1])
}

/// The smallest row with more cores than `cores` (the next machine size), if any.
pub fn next_above(cores: usize, ram_bytes: u64) -> Row {
    let ram_gb = ram_bytes as f64 / f64::from(1u32 << 30);
    TABLE
        .iter()
        .find(|r| r.cpu_cores as usize > cores && f64::from(r.ram_gb) > ram_gb)
        .copied()
        .unwrap_or(TABLE[TABLE.len() - 1])
}

impl Row {
    pub fn describe(&self) -> String {
        let plus = if self.open_ended { "+" } else { "" };
        format!(
            "{}-{} users, {}-{} requests/day: {}{plus} CPU cores, {} GB{plus} RAM, {} GB{plus} storage",
            self.users.0,
            self.users.1,
            self.daily_requests.0,
            self.daily_requests.1,
            self.cpu_cores,
            self.ram_gb,
            self.storage_gb
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_for_loads() {
        assert_eq!(row_for(10, 1_000).cpu_cores, 8);
        assert_eq!(row_for(11, 100).cpu_cores, 16);
        assert_eq!(row_for(5, 6_000).cpu_cores, 32);
        assert_eq!(row_for(500, 50_000).cpu_cores, 64);
        assert_eq!(row_for(5_000, 1).cpu_cores, 64);
        assert_eq!(next_above(2, 8 << 30).cpu_cores, 8);
        // More cores but less memory than now is not a bigger machine.
        assert_eq!(next_above(2, 24 << 30).cpu_cores, 16);
        assert_eq!(next_above(8, 16 << 30).cpu_cores, 16);
    }
}
