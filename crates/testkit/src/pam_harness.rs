//! Real-libpam test harness (being written)
