"""Operating KSI around `ksi run`: doctor, ls, gc, shell, submit, config."""
