//! Python objects to and from JSON values: filters, metadata, analysis
//! parameters go out as `serde_json::Value`; dataset infos, statuses and
//! result rows come back as dicts and lists.

use pyo3::IntoPyObjectExt;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// The Python form of `value`: `None`, `bool`, `int`, `float`, `str`,
/// `list`, `dict`.
pub(crate) fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    match value {
        Value::Null => Ok(py.None().into_bound(py)),
        Value::Bool(flag) => flag.into_bound_py_any(py),
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                integer.into_bound_py_any(py)
            } else if let Some(integer) = number.as_u64() {
                integer.into_bound_py_any(py)
            } else {
                number.as_f64().unwrap_or(f64::NAN).into_bound_py_any(py)
            }
        }
        Value::String(text) => text.into_bound_py_any(py),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            Ok(list.into_any())
        }
        Value::Object(object) => Ok(object_to_python(py, object)?.into_any()),
    }
}

/// A JSON object as a `dict`.
pub(crate) fn object_to_python<'py>(
    py: Python<'py>,
    object: &Map<String, Value>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in object {
        dict.set_item(key, to_python(py, value)?)?;
    }
    Ok(dict)
}

/// The Python form of anything serialisable (a wire type).
pub(crate) fn serialized_to_python<'py>(
    py: Python<'py>,
    value: &impl serde::Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(value)
        .map_err(|error| PyValueError::new_err(format!("cannot convert an answer: {error}")))?;
    to_python(py, &value)
}

/// `object` as JSON; `what` names it in errors ("filter", "metadata[3]").
/// NumPy scalars are accepted through their `item()`; NaN and infinities are
/// refused, since JSON cannot carry them.
pub(crate) fn from_python(object: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    if object.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(flag) = object.cast::<PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if object.is_instance_of::<PyInt>() {
        if let Ok(integer) = object.extract::<i64>() {
            return Ok(Value::from(integer));
        }
        if let Ok(integer) = object.extract::<u64>() {
            return Ok(Value::from(integer));
        }
        let number: f64 = object.extract()?;
        return finite_number(number, what);
    }
    if object.is_instance_of::<PyFloat>() {
        return finite_number(object.extract()?, what);
    }
    if let Ok(text) = object.cast::<PyString>() {
        return Ok(Value::String(text.to_str()?.to_owned()));
    }
    if let Ok(dict) = object.cast::<PyDict>() {
        return Ok(Value::Object(dict_from_python(dict, what)?));
    }
    if object.is_instance_of::<PyList>() || object.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (index, item) in object.try_iter()?.enumerate() {
            items.push(from_python(&item?, &format!("{what}[{index}]"))?);
        }
        return Ok(Value::Array(items));
    }
    // NumPy scalars (numpy.int64, numpy.bool_, ...) and 0-d arrays.
    if object.hasattr("item")? && object.hasattr("dtype")? {
        let item = object.call_method0("item")?;
        if !item.hasattr("dtype")? {
            return from_python(&item, what);
        }
    }
    Err(PyTypeError::new_err(format!(
        "{what} holds a {}, which has no JSON form; use str, int, float, bool, None, list or dict",
        object.get_type().name()?
    )))
}

/// A dict with string keys as a JSON object.
pub(crate) fn dict_from_python(
    dict: &Bound<'_, PyDict>,
    what: &str,
) -> PyResult<Map<String, Value>> {
    let mut object = Map::new();
    for (key, value) in dict.iter() {
        let Ok(key) = key.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "{what} has a key of type {}; JSON object keys are str",
                key.get_type().name()?
            )));
        };
        let key = key.to_str()?.to_owned();
        let value = from_python(&value, &format!("{what}[{key:?}]"))?;
        object.insert(key, value);
    }
    Ok(object)
}

/// An optional dict argument as a JSON object; anything but a dict is a
/// `TypeError`.
pub(crate) fn optional_object(
    object: Option<&Bound<'_, PyAny>>,
    what: &str,
) -> PyResult<Option<Map<String, Value>>> {
    let Some(object) = object.filter(|object| !object.is_none()) else {
        return Ok(None);
    };
    let Ok(dict) = object.cast::<PyDict>() else {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a dict, not {}",
            object.get_type().name()?
        )));
    };
    dict_from_python(dict, what).map(Some)
}

fn finite_number(number: f64, what: &str) -> PyResult<Value> {
    Number::from_f64(number).map(Value::Number).ok_or_else(|| {
        PyValueError::new_err(format!(
            "{what} is {number}, which JSON cannot carry; use a finite number"
        ))
    })
}
