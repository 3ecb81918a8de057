//! Autoverification: which results may leave the lab without a human looking at them.
