"""Where requests are executed: behind one small interface (`Backend`)."""
