-- Dovecot LMTP push hook for chatmail-metadata (push_notification_lua driver).
--
-- For every message delivered to a user by someone else, set the private METADATA
-- entry /private/messagenew on the mailbox. Dovecot forwards that to the dict at
-- mail_attribute_dict (chatmail-metadata), which queues a push notification for each of
-- the user's device tokens. Messages a user sends to themselves (other devices pick
-- those up through IMAP) trigger nothing.

function dovecot_lua_notify_begin_txn(user)
  return user
end

function dovecot_lua_notify_event_message_new(user, event)
  if user.username == event.from_address then
    return
  end
  local mailbox = user:mailbox(event.mailbox)
  mailbox:sync()
  mailbox:metadata_set("/private/messagenew", "")
  mailbox:free()
end

function dovecot_lua_notify_end_txn(ctx, success)
end
