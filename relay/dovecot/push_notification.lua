-- Dovecot LMTP push_notification hook of a chatmail relay.
--
-- For every message delivered to a mailbox whose owner did not send it, set the private
-- IMAP METADATA entry /private/messagenew (empty value). Dovecot turns that into a dict
-- transaction to chatmail-metadata, which queues one push notification per device token
-- of the owner (SPEC §5.3). Messages a user sends to themselves (multi-device copies)
-- notify nobody.

-- One transaction per delivery; the context we hand back is the user object.
function dovecot_lua_notify_begin_txn(user)
  return user
end

function dovecot_lua_notify_event_message_new(user, event)
  if user.username == event.from_address then
    return
  end
  local mailbox = user:mailbox(event.mailbox)
  -- Attributes can only be set on a synced mailbox view.
  mailbox:sync()
  mailbox:metadata_set("/private/messagenew", "")
  mailbox:free()
end

function dovecot_lua_notify_end_txn(ctx, success)
end
