"""The project window's tabs, one module each: environment, apps, files, variables, output."""
