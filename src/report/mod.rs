//! Metrics, classification reports and pictures.
