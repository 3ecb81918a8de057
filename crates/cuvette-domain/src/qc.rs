//! Statistical quality control: Westgard multirules, sigma metrics, control statistics and
//! patient-based moving averages.
