"""`FusedAdam`: Keras Adam whose update is TensorFlow's fused `ResourceApplyAdam` kernel.

Keras 3's `keras.optimizers.Adam.update_step` is written with `keras.ops`: about 41 graph ops
per variable, which `tf.function` must trace on the first training step of every model (a
200-variable model: 8,208 ops in the traced `apply`, against 2,608 for momentum SGD). TF's
`ResourceApplyAdam` computes the same formula in one op per variable.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kdet")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` updating each variable with TF's fused `ResourceApplyAdam`.

    Same arguments, variables (`momentum` and `velocity` per trained variable, in the same
    order, so `.weights.h5` checkpoints of either resume with the other), `get_config` and
    `.keras` files as `keras.optimizers.Adam`, and Keras's update formula, which the kernel
    computes: with `t = iterations + 1`,
    `alpha = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)`,
    `m += (g - m) * (1 - beta_1)`, `v += (g**2 - v) * (1 - beta_2)`,
    `variable -= alpha * m / (sqrt(v) + epsilon)`; `beta_1**t` and `beta_2**t` are computed
    once per step, in float32, for all variables. The result is Keras Adam's to the bit when
    `1 - beta_1` and `1 - beta_2` are exact in float32 (e.g. 0.5, 0.75); otherwise the kernel's
    float32 `1 - beta_2` (the arithmetic of Keras 2's Adam, which ran this kernel) differs from
    Keras 3's float64-rounded one: with the default `beta_2=0.999`, velocities 1.3e-5 relative,
    each step's update 2-3e-5. Gradient clipping, weight decay, loss scaling, gradient
    accumulation, EMA and `tf.distribute` are the parent's. AMSGrad, sparse gradients
    (`tf.IndexedSlices`) and variables that are not float32 take the parent's `update_step`.

    TensorFlow backend only (the kernel is a TF op).

    Example:
    ```python
    model.compile(optimizer=kdet.training.FusedAdam(1e-3, epsilon=1e-7))
    ```
    """

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        """The parent's per-variable update, handed `(learning_rate, beta_1**t, beta_2**t)`.

        Args:
            grads: list of gradients, one per variable.
            trainable_variables: list of the variables to update.
            learning_rate: scalar tensor, this step's learning rate.
        """
        step = tf.cast(self.iterations + 1, tf.float32)
        beta_1_power = tf.pow(tf.cast(self.beta_1, tf.float32), step)
        beta_2_power = tf.pow(tf.cast(self.beta_2, tf.float32), step)
        super()._backend_update_step(
            grads, trainable_variables, (learning_rate, beta_1_power, beta_2_power)
        )

    def update_step(self, gradient, variable, learning_rate):
        """Updates `variable` and its `momentum` / `velocity` in one `ResourceApplyAdam` op.

        Args:
            gradient: tensor (or `tf.IndexedSlices`) shaped like `variable`.
            variable: the `tf.Variable` to update (one replica's under `tf.distribute`).
            learning_rate: `(learning_rate, beta_1**t, beta_2**t)` scalar tensors, from
                `_backend_update_step`.
        """
        learning_rate, beta_1_power, beta_2_power = learning_rate
        dtype = variable.dtype
        # float32 only: the beta powers are float32 (Keras's are in the variable's dtype), and in
        # float16 the kernel's `1 - beta_2` (0.000977) is 2.4% off Keras's (0.0010004).
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices) or dtype != tf.float32:
            super().update_step(gradient, variable, learning_rate)
            return
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=beta_1_power,
            beta2_power=beta_2_power,
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )
