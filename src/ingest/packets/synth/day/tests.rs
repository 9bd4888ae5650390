//! Tests of the day profile.
