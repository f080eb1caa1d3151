"""Code generation shared by every backend: a kernel AST lowered to a Plan the renderers turn into source."""
