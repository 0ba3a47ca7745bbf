# Included by ribd/_announce.pyx and ribd/_wide.pyx (each defines
# ``_path_attributes``, the ``PathAttributes`` type).

cdef inline object _new_value(rib, object old, bint zero_id, object path_id, object attrs,
                              Py_ssize_t *added_paths, fs):
    """``Rib._with_path(old, path_id, attrs, fs)``: the value a router's slot takes
    and, in ``added_paths``, how many paths that adds. Its common case (path id
    0 over nothing or over one set: ``attrs`` itself) without a Python call; an
    ADD-PATH set through the method, whose first lines are this same test."""
    if zero_id and (old is None or type(old) is _path_attributes):
        added_paths[0] = 0 if old is not None else 1
        return attrs
    new, added = rib._with_path(old, path_id, attrs, fs)
    added_paths[0] = added
    return new
